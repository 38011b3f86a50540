"""Every figure function returns a Figure with the expected axes on small synthetic inputs."""

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from kdmri.physics.masks import cartesian_mask  # noqa: E402
from kdmri.reporting import plots  # noqa: E402


def _img(shape=(24, 20), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    img = np.exp(-(yy**2 + xx**2) * 3) + 0.05 * rng.random(shape)
    return (img / img.max()).astype(np.float32)


def _renders(fig: Figure) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_mask_gallery_one_panel_per_dataset_and_acceleration():
    masks = {("a", "4x"): cartesian_mask((16, 12), 4), ("a", "8x"): cartesian_mask((16, 12), 8),
             ("b", "4x"): cartesian_mask((10, 10), 4)}
    fig = plots.mask_gallery(masks)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert fig.axes[0].get_title().startswith("a 4x: ")
    assert fig.axes[1].get_title().startswith("a 8x: ")
    assert not fig.axes[3].axison  # ("b", "8x") is missing: blank panel
    _renders(fig)
    with pytest.raises(ValueError, match="masks"):
        plots.mask_gallery({})


def test_mask_gallery_sorts_accelerations_numerically():
    masks = {("a", f"{r}x"): cartesian_mask((12, 12), r) for r in (10, 4, 8)}
    titles = [ax.get_title() for ax in plots.mask_gallery(masks).axes]
    assert [t.split(":")[0] for t in titles] == ["a 4x", "a 8x", "a 10x"]


def test_kspace_figure_has_six_panels():
    img, mask = _img(), cartesian_mask((24, 20), 4)
    fig = plots.kspace_figure(img, mask)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert "aliasing" in fig.axes[5].get_title()
    _renders(fig)
    with pytest.raises(ValueError, match="mask: shape"):
        plots.kspace_figure(img, cartesian_mask((20, 20), 4))


def test_image_grid_accepts_tensors_and_blanks_unused_panels():
    images = {"a": _img(), "b": torch.from_numpy(_img(seed=1))[None, None], "c": _img(seed=2)}
    fig = plots.image_grid(images, ncols=2, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    assert not fig.axes[3].axison
    assert len(plots.image_grid({"x": _img()}).axes) == 1
    with pytest.raises(ValueError, match="2-D image"):
        plots.image_grid({"bad": np.zeros((2, 3, 4))})


def test_training_curves_from_frames_and_csv(tmp_path):
    log = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.3, 0.2, 0.1], "val_loss": [0.25, 0.15, 0.2]})
    log.to_csv(tmp_path / "train_log.csv", index=False)
    fig = plots.training_curves({"teacher": log, "student": tmp_path / "train_log.csv"})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == 2  # one training curve per log
    assert len(fig.axes[1].get_lines()) == 4  # validation curve + best-epoch marker per log
    _renders(fig)
    with pytest.raises(ValueError, match="val_loss"):
        plots.training_curves({"x": log.drop(columns="val_loss")})
    with pytest.raises(FileNotFoundError):
        plots.training_curves({"x": tmp_path / "missing.csv"})


def test_attention_figure_rows_by_columns():
    maps = {"teacher": [_img(seed=i) for i in range(3)], "student": [_img(seed=i + 3) for i in range(3)]}
    fig = plots.attention_figure(maps, column_labels=["c1", "c2", "c3"])
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert fig.axes[0].get_title() == "c1" and fig.axes[3].get_title() == ""
    assert fig.axes[3].get_ylabel() == "student"
    _renders(fig)
    with pytest.raises(ValueError, match="column_labels"):
        plots.attention_figure(maps, column_labels=["only one"])


def test_reconstruction_figure_images_insets_and_residues():
    target = _img()
    images = {"ZF": _img(seed=5) * 0.8, "target": target, "teacher": target + 0.01, "student": target - 0.02}
    fig = plots.reconstruction_figure(images)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * 4 + 1  # two rows of panels and the residue colour bar
    top = fig.axes[:4]
    assert all(len(ax.child_axes) == 1 for ax in top)  # a zoomed inset in every image
    assert "dB" in top[0].get_title() and top[1].get_title() == "target"
    assert not fig.axes[5].axison  # no residue for the target itself
    _renders(fig)
    fig = plots.reconstruction_figure(images, zoom=(2, 10, 3, 9), residue_max=0.5)
    assert len(fig.axes) == 9
    with pytest.raises(KeyError, match="target"):
        plots.reconstruction_figure({"ZF": target})
    with pytest.raises(ValueError, match="shape"):
        plots.reconstruction_figure({"target": target, "bad": np.zeros((5, 5))})


def test_default_zoom_is_central():
    assert plots.default_zoom((96, 96)) == (36, 60, 36, 60)


def test_paired_difference_plot_with_and_without_summary():
    d = np.array([0.1, 0.3, -0.05, 0.2])
    fig = plots.paired_difference_plot(d, {"mean": 0.1375, "ci_low": -0.05, "ci_high": 0.33, "n": 4})
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert any("mean +0.138" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    _renders(fig)
    assert len(plots.paired_difference_plot(d).axes) == 1
    with pytest.raises(ValueError, match="differences"):
        plots.paired_difference_plot([])


def _comparison_table():
    return pd.DataFrame({
        "n": [8, 8], "a_psnr_mean": [31.0, 30.5], "a_psnr_std": [1.0, 0.9], "b_psnr_mean": [30.6, 30.6],
        "b_psnr_std": [1.1, 1.1], "d_psnr_mean": [0.4, -0.1], "d_psnr_ci_low": [0.2, float("nan")],
        "d_psnr_ci_high": [0.6, float("nan")]}, index=pd.Index(["both", "imitation"], name="variant"))


def test_comparison_figure_values_and_differences():
    fig = plots.comparison_figure(_comparison_table(), "psnr", "variant", "plain student", title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert {t.get_text() for t in fig.axes[0].get_yticklabels()} == {"both", "imitation"}
    assert "variant − plain student" in fig.axes[1].get_xlabel()
    _renders(fig)
    bare = plots.comparison_figure(_comparison_table(), a_label=None, b_label=None, show_values=False)
    assert len(bare.axes) == 1 and bare.axes[0].get_xlabel() == "PSNR difference (dB) (paired)"
    with pytest.raises(ValueError, match="ssim"):
        plots.comparison_figure(_comparison_table(), "ssim")
    with pytest.raises(ValueError, match="at least one"):
        plots.comparison_figure(_comparison_table().iloc[:0])


# --------------------------------------------------------------------------- super-resolution, demo data


def test_sr_kspace_figure_outlines_the_kept_block():
    fig = plots.sr_kspace_figure(_img((24, 20)), 8)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert "central 8x8" in fig.axes[2].get_title()
    assert len(fig.axes[1].patches) == 1  # the kept block outlined on the k-space
    assert [line.get_label() for line in fig.axes[5].get_lines()] == ["target", "LR"]
    _renders(fig)
    assert "central 6x10" in plots.sr_kspace_figure(_img((24, 20)), (6, 10)).axes[2].get_title()
    with pytest.raises(ValueError, match="keep"):
        plots.sr_kspace_figure(_img((24, 20)), 30)


def test_demo_layout_figure_marks_slab_and_margins():
    vol = np.random.default_rng(0).random((12, 14, 20))
    fig = plots.demo_layout_figure(vol, (8, 12), 2)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert len(fig.axes[0].patches) == 3 and len(fig.axes[1].patches) == 3  # slab + 2 margins
    slab = fig.axes[0].patches[0]
    assert slab.get_height() == 4 and slab.get_y() == 20 - 12 - 0.5  # rows of z 8..11 after rot90
    assert "z = 10" in fig.axes[2].get_title()
    _renders(fig)
    with pytest.raises(ValueError, match="val_slab"):
        plots.demo_layout_figure(vol, (15, 25), 2)
    with pytest.raises(ValueError, match="X, Y, Z"):
        plots.demo_layout_figure(vol[0], (1, 2), 0)
