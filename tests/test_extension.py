"""The payoff of the registries: from this file alone, a new feature-KD method and a new toy
dataset are registered and run through training, evaluation and the ablation recipe on the
quick profile (params/ci.yaml). Nothing else in the package changes for them."""

from __future__ import annotations

import numpy as np
import pytest

from kdmri.checkpoint import LAST, load_checkpoint
from kdmri.config import load_config
from kdmri.distill.registry import FEATURE_LOSSES, FeatureLoss, register_feature_loss
from kdmri.evaluation import evaluate
from kdmri.runs import ablation_summary, run_ablation
from kdmri.training import train
from kdmri.training.recipes import ABLATIONS, Variant, register_ablation

# ---------------------------------------------------------------- a new feature-KD method


class ChannelMeanLoss(FeatureLoss):
    """Toy method: squared difference of the channel-mean maps of each layer pair."""

    def pair_loss(self, index, student, teacher):
        return (student.mean(dim=1) - teacher.mean(dim=1)).pow(2).mean()


@pytest.fixture
def toy_method():
    register_feature_loss("toy_mean")(ChannelMeanLoss)
    register_ablation("method-toy_mean", Variant("feature stage with the toy method, then KD",
                                                 ("feature", "kd"), {"feature_loss": "toy_mean"}))
    yield "toy_mean"
    del FEATURE_LOSSES["toy_mean"], ABLATIONS["method-toy_mean"]  # leave the registries as found


# ---------------------------------------------------------------- a new toy dataset


def _toy_volume(rng: np.random.Generator, n: int = 4, size=(24, 20)) -> np.ndarray:
    """Blobs of random positions and widths in [0, 1] (H, W, slices)."""
    h, w = size
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    vol = np.stack([sum(np.exp(-((yy - rng.uniform(-.5, .5)) ** 2 + (xx - rng.uniform(-.5, .5)) ** 2)
                               * rng.uniform(3, 9)) for _ in range(3)) for _ in range(n)], axis=-1)
    return (vol / vol.max()).astype(np.float32)


@pytest.fixture
def toy_data(tmp_path):
    from kdmri.data import write_volume
    from kdmri.physics.masks import cartesian_mask

    rng = np.random.default_rng(0)
    masks = {4: cartesian_mask((24, 20), 4, seed=1)}
    root = tmp_path / "toy"
    for split, names in (("train", ("a", "b", "c")), ("validation", ("v",))):
        for name in names:
            write_volume(root / split / f"{name}.h5", _toy_volume(rng), masks)
    return root


def quick_profile(data_root, tmp_path, **changes):
    """params/ci.yaml (the notebooks' quick profile) on the toy dataset."""
    return load_config("ci", {"dataset": "toy", "data_root": str(data_root),
                              "experiments_root": str(tmp_path / "exp"), "batch_size": 2, **changes})


def test_new_method_trains_evaluates_and_runs_as_an_ablation(toy_method, toy_data, tmp_path):
    cfg = quick_profile(toy_data, tmp_path)
    train(cfg, "teacher")
    mine = cfg.replace(feature_loss=toy_method, method="toy")
    out = train(mine.replace(teacher_method=cfg.method), "feature")
    history = load_checkpoint(out / LAST)["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[-1]["train_feature"] < history[0]["train_feature"]  # the toy loss is learned
    report = evaluate(mine.replace(teacher_method=cfg.method), "feature")
    assert report["method"] == "toy" and np.isfinite(report["metrics"]["psnr"]["mean"])
    # through the ablation recipe, beside the plain student
    rep = run_ablation(cfg, "method-toy_mean")
    assert rep["config"]["feature_loss"] == "toy_mean" and rep["role"] == "kd"
    run_ablation(cfg, "neither")
    table = ablation_summary(cfg, ["method-toy_mean"])
    assert list(table.index) == ["neither", "method-toy_mean"]
    assert ABLATIONS["method-toy_mean"].changes == {"feature_loss": "toy_mean"}


def test_an_unknown_method_is_a_clear_error(toy_data, tmp_path):
    from kdmri.errors import ConfigError

    cfg = quick_profile(toy_data, tmp_path, feature_loss="nonesuch")
    train(cfg, "teacher")
    with pytest.raises(ConfigError, match="feature_loss='nonesuch'"):
        train(cfg, "feature")
