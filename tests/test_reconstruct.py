"""`python -m kdmri reconstruct`: NIfTI and HDF5 round trips, metrics, clear errors."""

from __future__ import annotations

import re

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from kdmri.checkpoint import BEST
from kdmri.config import Config
from kdmri.data import write_volume
from kdmri.evaluation.evaluate import evaluate
from kdmri.physics.masks import cartesian_mask
from kdmri.tools.cli import main
from kdmri.tools.reconstruct import preview_path, reconstruct
from kdmri.training import train

# network-vs-zero-filled margins of a trained student: rerun under a second kernel path
pytestmark = pytest.mark.numerics


def phantom(shape, n_slices, seed) -> np.ndarray:
    """Smooth head-like slices (H, W, S) in [0, 1]: a bright rim, darker tissue, a few
    brighter blobs at random places, blurred."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    slices = []
    for _ in range(n_slices):
        img = np.zeros(shape)
        a, b = 0.75 + 0.1 * rng.random(), 0.6 + 0.1 * rng.random()
        img[(yy / a) ** 2 + (xx / b) ** 2 < 1] = 0.6
        img[(yy / (a - 0.08)) ** 2 + (xx / (b - 0.08)) ** 2 < 1] = 0.35
        for _ in range(4):
            cy, cx = rng.uniform(-0.4, 0.4, 2)
            ry, rx = rng.uniform(0.08, 0.25, 2)
            img[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = rng.uniform(0.5, 1.0)
        slices.append(gaussian_filter(img, 0.8))
    vol = np.stack(slices, axis=-1)
    return (vol / vol.max()).astype(np.float32)


AFFINE = np.array([[0.0, -0.9, 0.1, 12.5],
                   [1.1, 0.0, 0.0, -30.0],
                   [0.0, 0.05, 3.0, 7.25],
                   [0.0, 0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A student trained for a few seconds on 32x32 phantoms at 4x, and its config."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("recon")
    masks = {4: cartesian_mask((32, 32), 4, seed=4)}
    write_volume(tmp / "data" / "train" / "a.h5", phantom((32, 32), 12, 0), masks)
    write_volume(tmp / "data" / "train" / "b.h5", phantom((32, 32), 12, 1), masks)
    write_volume(tmp / "data" / "validation" / "v.h5", phantom((32, 32), 4, 2), masks)
    cfg = Config(dataset="tiny", acc="4x", data_root=str(tmp / "data"), epochs=6, batch_size=4,
                 lr=3e-3, lr_step=100, experiments_root=str(tmp / "exp"), progress=False)
    out = train(cfg, "student")
    return cfg, out / BEST


def _nifti(path, vol, affine=AFFINE):
    nib.save(nib.Nifti1Image(vol, affine), str(path))
    return path


def _psnrs(text: str) -> dict[str, float]:
    return {name: float(v) for name, v in re.findall(r"([\w-]+): PSNR ([\d.]+) dB", text)}


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def test_student_beats_zero_filling_on_validation(trained):
    cfg, _ = trained
    net = evaluate(cfg, "student", save_reconstructions=False)["metrics"]["psnr"]["mean"]
    zf = evaluate(cfg, "zf", save_reconstructions=False)["metrics"]["psnr"]["mean"]
    assert net > zf + 3


def test_nifti_round_trip(trained, tmp_path, capsys):
    _, ckpt = trained
    vol = 800.0 * phantom((40, 36), 5, seed=7)  # another size, scanner-like units
    src = _nifti(tmp_path / "scan.nii.gz", vol)
    out = tmp_path / "out" / "recon.nii.gz"
    assert main(["reconstruct", "--checkpoint", str(ckpt), "--input", str(src),
                 "--out", str(out), "--acc", "4x"]) == 0
    psnrs = _psnrs(capsys.readouterr().out)
    assert psnrs["network"] > psnrs["zero-filled"] + 2
    img = nib.load(str(out))
    assert img.shape == vol.shape
    np.testing.assert_allclose(img.affine, nib.load(str(src)).affine, atol=1e-6)
    data = img.get_fdata()
    assert 0.8 * vol.max() < data.max() < 1.2 * vol.max()  # scaled back to the input's units
    assert preview_path(out).is_file() and preview_path(out).name == "recon.png"
    assert _leftovers(out.parent) == []


def test_mask_file_and_function_api(trained, tmp_path):
    _, ckpt = trained
    vol = phantom((40, 36), 3, seed=8)
    src = _nifti(tmp_path / "scan.nii", vol)
    mask = tmp_path / "mask.npy"
    np.save(mask, cartesian_mask((40, 36), 4, seed=1))
    res = reconstruct(ckpt, src, tmp_path / "r.nii", mask=mask)
    assert res["mask"] == str(mask) and res["shape"] == [40, 36, 3]
    assert res["metrics"]["network"]["psnr"] > res["metrics"]["zero-filled"]["psnr"]
    assert res["metrics"]["network"]["ssim"] > res["metrics"]["zero-filled"]["ssim"]


def test_hdf5_round_trip(trained, tmp_path, capsys):
    _, ckpt = trained
    src = write_volume(tmp_path / "vol.h5", phantom((32, 40), 4, seed=9),
                       {4: cartesian_mask((32, 40), 4, seed=3)})
    out = tmp_path / "recon.h5"
    assert main(["reconstruct", "--checkpoint", str(ckpt), "--input", str(src),
                 "--out", str(out)]) == 0
    psnrs = _psnrs(capsys.readouterr().out)
    assert psnrs["network"] > psnrs["zero-filled"]
    with h5py.File(out, "r") as fh:
        assert fh["reconstruction"].shape == (32, 40, 4)
        assert fh["reconstruction"].dtype == np.float32
    assert (tmp_path / "recon.png").is_file()


def _fails(capsys, args, *needles) -> str:
    assert main(["reconstruct", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    for needle in needles:
        assert needle in err
    return err


def test_errors_name_the_file_and_leave_no_output(trained, tmp_path, capsys):
    _, ckpt = trained
    out = tmp_path / "out.nii.gz"
    run = ["--checkpoint", str(ckpt), "--out", str(out)]
    # 2-D image
    flat = _nifti(tmp_path / "flat.nii.gz", phantom((32, 32), 1, 0)[..., 0])
    _fails(capsys, [*run, "--input", str(flat)], str(flat), "3-D")
    # corrupt file
    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08 this is not a nifti")
    _fails(capsys, [*run, "--input", str(bad)], str(bad), "NIfTI")
    # a mask of the wrong size
    good = _nifti(tmp_path / "good.nii.gz", phantom((32, 32), 2, 0))
    mask = tmp_path / "mask.npy"
    np.save(mask, cartesian_mask((32, 30), 4))
    _fails(capsys, [*run, "--input", str(good), "--mask", str(mask)], str(mask), "(32, 32)")
    # NaNs
    vol = phantom((32, 32), 2, 0)
    vol[3, 4, 1] = np.nan
    nan = _nifti(tmp_path / "nan.nii.gz", vol)
    _fails(capsys, [*run, "--input", str(nan)], str(nan), "NaN")
    # unknown extension
    txt = tmp_path / "scan.txt"
    txt.write_text("x")
    _fails(capsys, [*run, "--input", str(txt)], str(txt), ".nii")
    # a corrupt HDF5 file, and an output type that does not fit the input
    bad_h5 = tmp_path / "corrupt.h5"
    bad_h5.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    _fails(capsys, ["--checkpoint", str(ckpt), "--out", str(tmp_path / "o.h5"), "--input", str(bad_h5)],
           str(bad_h5), "HDF5")
    _fails(capsys, [*run, "--input", str(bad_h5)], "--out", ".h5")
    # missing checkpoint
    missing = tmp_path / "nope" / "best_model.pt"
    _fails(capsys, ["--checkpoint", str(missing), "--out", str(out), "--input", str(good)],
           str(missing), "not found")
    assert not out.exists() and not preview_path(out).exists()
    assert not (tmp_path / "o.h5").exists() and _leftovers(tmp_path) == []


def test_super_resolution_checkpoint(tmp_path, capsys):
    torch.set_num_threads(1)
    root = tmp_path / "data"
    masks = {4: cartesian_mask((32, 32), 4, seed=4)}
    write_volume(root / "train" / "a.h5", phantom((32, 32), 4, 0), masks)
    write_volume(root / "validation" / "v.h5", phantom((32, 32), 2, 2), masks)
    cfg = Config(dataset="tiny", acc="4x", data_root=str(root), epochs=1, batch_size=4, sr_keep=12,
                 experiments_root=str(tmp_path / "exp"), progress=False)
    ckpt = train(cfg, "sr-student") / BEST
    src = _nifti(tmp_path / "scan.nii.gz", phantom((32, 32), 3, 5))
    out = tmp_path / "sr.nii.gz"
    assert main(["reconstruct", "--checkpoint", str(ckpt), "--input", str(src), "--out", str(out)]) == 0
    assert "low-resolution: PSNR" in capsys.readouterr().out
    assert nib.load(str(out)).shape == (32, 32, 3)
