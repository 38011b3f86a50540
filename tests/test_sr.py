"""Super-resolution: k-space truncation, the VDSR teacher/student and the SR slice dataset."""

from __future__ import annotations

import pickle
from dataclasses import FrozenInstanceError

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from kdmri.data import write_volume
from kdmri.data.sr import SRSliceDataset, central_block_mask, truncate_kspace, truncate_kspace_complex
from kdmri.errors import DataError
from kdmri.models.dccnn import ReconOutput, count_parameters
from kdmri.models.vdsr import (
    VDSR,
    VDSR_DEFAULT_PAIRS,
    VDSR_STUDENT,
    VDSR_TEACHER,
    VDSRConfig,
    build_vdsr,
)
from kdmri.physics.fft import fft2c
from kdmri.physics.masks import cartesian_mask

# ---------------------------------------------------------------------------------------------
# k-space truncation


def _expected_block(n: int, k: int) -> np.ndarray:
    """Centred-layout indicator of the k lowest frequencies of an n-point DFT, built from
    ``fftfreq`` independently of the implementation: frequencies -(k // 2) .. (k - 1) // 2."""
    f = np.rint(np.fft.fftfreq(n) * n).astype(int)
    return np.fft.fftshift((f >= -(k // 2)) & (f <= (k - 1) // 2))


@pytest.mark.parametrize(
    ("shape", "keep"),
    [((256, 256), 64), ((32, 32), 8), ((15, 15), 5), ((16, 12), (6, 4)), ((17, 10), (7, 10)),
     ((9, 14), (9, 3)), ((16, 16), 1)],
)
def test_central_block_mask_matches_low_frequencies(shape, keep):
    kh, kw = (keep, keep) if isinstance(keep, int) else keep
    mask = central_block_mask(shape, keep)
    assert mask.shape == shape and mask.dtype == bool
    assert mask.sum() == kh * kw
    expected = _expected_block(shape[0], kh)[:, None] & _expected_block(shape[1], kw)[None, :]
    np.testing.assert_array_equal(mask, expected)
    assert mask[shape[0] // 2, shape[1] // 2]  # DC is always kept


def test_central_block_paper_indices():
    mask = central_block_mask((256, 256), 64)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    assert rows[0] == 96 and rows[-1] == 159 and cols[0] == 96 and cols[-1] == 159


@pytest.mark.parametrize(
    ("shape", "keep"), [((32, 32), 8), ((15, 21), (5, 6)), ((16, 13), (7, 13)), ((20, 24), 20)]
)
def test_truncation_keeps_exactly_the_central_block(shape, keep):
    rng = np.random.default_rng(0)
    image = rng.random((2, *shape))
    low = truncate_kspace_complex(image, keep)
    assert low.shape == image.shape and np.iscomplexobj(low)
    k_low, k_full = fft2c(low), fft2c(image)
    mask = central_block_mask(shape, keep)
    np.testing.assert_allclose(k_low[..., mask], k_full[..., mask], atol=1e-12)
    np.testing.assert_allclose(k_low[..., ~mask], 0, atol=1e-12)
    mag = truncate_kspace(image, keep)
    assert mag.shape == image.shape and mag.dtype == np.float32
    np.testing.assert_allclose(mag, np.abs(low), rtol=1e-6, atol=1e-6)


def test_low_frequency_survives_high_frequency_removed():
    h = w = 32
    y = np.arange(h)[:, None] * np.ones((1, w))
    low_part = 1.0 + 0.5 * np.cos(2 * np.pi * 3 * y / h)  # frequencies 0, +-3 (kept by 16)
    high_part = 0.2 * np.cos(2 * np.pi * 12 * y / h)  # frequencies +-12 (removed by 16)
    out = truncate_kspace(low_part + high_part, 16)
    np.testing.assert_allclose(out, low_part, atol=1e-6)


@pytest.mark.parametrize("shape", [(16, 16), (15, 20), (7, 9)])
def test_full_keep_returns_image(shape):
    image = np.random.default_rng(1).random(shape).astype(np.float32)  # non-negative
    np.testing.assert_allclose(truncate_kspace(image, shape), image, atol=1e-6)
    if shape[0] == shape[1]:
        np.testing.assert_allclose(truncate_kspace(image, shape[0]), image, atol=1e-6)
    signed = image - 0.5  # magnitude of a signed image
    np.testing.assert_allclose(truncate_kspace(signed, shape), np.abs(signed), atol=1e-6)


def test_torch_matches_numpy_and_keeps_kind():
    image = np.random.default_rng(2).random((3, 1, 24, 20))
    ref = truncate_kspace(image, (8, 6))
    for dtype in (torch.float32, torch.float64):
        out = truncate_kspace(torch.from_numpy(image).to(dtype), (8, 6))
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
        assert out.shape == (3, 1, 24, 20)
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("keep", [0, -1, 17, (8, 0), (17, 4), (4, 13), 2.5, (4,), "8", True])
def test_bad_keep_raises(keep):
    with pytest.raises(ValueError, match="keep"):
        truncate_kspace(np.ones((16, 12)), keep)


def test_bad_image_raises():
    with pytest.raises(ValueError, match="real image"):
        truncate_kspace(np.ones((8, 8), dtype=complex), 4)
    with pytest.raises(ValueError, match="image"):
        truncate_kspace(np.ones(8), 4)
    with pytest.raises(TypeError, match="image"):
        truncate_kspace([[1.0, 2.0], [3.0, 4.0]], 1)


# ---------------------------------------------------------------------------------------------
# VDSR


def test_vdsr_parameter_counts():
    assert count_parameters(build_vdsr("teacher")) == 333_569
    assert count_parameters(build_vdsr("student")) == 185_857
    assert VDSR_TEACHER.n_layers == 11 and VDSR_STUDENT.n_layers == 7


@pytest.mark.parametrize("config", [VDSR_TEACHER, VDSR_STUDENT])
def test_vdsr_forward_shapes_and_features(config):
    torch.manual_seed(0)
    model = build_vdsr(config)
    x = torch.rand(2, 1, 12, 10)
    out = model(x)
    assert isinstance(out, ReconOutput)
    assert out.image.shape == x.shape and out.cascades == []
    names = [f"conv{j}" for j in range(1, config.n_layers + 1)]
    assert list(out.features) == names == model.feature_names()
    for name in names[:-1]:
        assert out.features[name].shape == (2, 64, 12, 10)
        assert (out.features[name] >= 0).all()  # post-ReLU
    assert out.features[names[-1]].shape == x.shape
    torch.testing.assert_close(out.image, x + out.features[names[-1]])
    assert model(x, return_features=False).features == {}


def test_vdsr_default_pair_names_exist():
    student, teacher = build_vdsr("student"), build_vdsr("teacher")
    for s_name, t_name in VDSR_DEFAULT_PAIRS:
        assert s_name in student.feature_names() and t_name in teacher.feature_names()
    assert VDSR_DEFAULT_PAIRS == [("conv4", "conv6")]


def test_vdsr_residual_identity_when_last_conv_zeroed():
    model = build_vdsr("student")
    last = model.body.convs[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    x = torch.rand(1, 1, 9, 11)
    torch.testing.assert_close(model(x).image, x)
    no_res = VDSR(VDSRConfig(3, channels=4, residual=False))
    with torch.no_grad():
        no_res.body.convs[-1].weight.zero_()
        no_res.body.convs[-1].bias.zero_()
    torch.testing.assert_close(no_res(x).image, torch.zeros_like(x))


def test_vdsr_gradients_flow():
    model = build_vdsr(VDSRConfig(4, channels=8))
    x = torch.rand(2, 1, 8, 8)
    model(x).image.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_vdsr_errors():
    with pytest.raises(ValueError, match="role 'big'"):
        build_vdsr("big")
    with pytest.raises(ValueError, match="n_layers=1"):
        VDSRConfig(1)
    with pytest.raises(ValueError, match="channels"):
        VDSRConfig(3, channels=0)
    with pytest.raises(ValueError, match=r"x: expected \(B, 1, H, W\)"):
        build_vdsr(VDSRConfig(2, channels=2))(torch.rand(1, 2, 4, 4))
    with pytest.raises(FrozenInstanceError):
        VDSR_TEACHER.n_layers = 3  # frozen: presets cannot be changed by accident


# ---------------------------------------------------------------------------------------------
# SRSliceDataset

H, W, S = 24, 20, 3


def _volume(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    blob = (xx**2 + yy**2 < 0.5).astype(np.float32)
    vol = np.stack([blob * (0.6 + 0.3 * rng.random((H, W))) for _ in range(S)], axis=-1)
    return vol.astype(np.float32)


@pytest.fixture
def sr_root(tmp_path):
    mask = cartesian_mask((H, W), 4)
    for i in range(2):
        write_volume(tmp_path / f"vol{i}.h5", _volume(i), {4: mask})
    return tmp_path


@pytest.mark.parametrize("in_memory", [False, True])
def test_sr_dataset_items(sr_root, in_memory):
    ds = SRSliceDataset(sr_root, keep=8, in_memory=in_memory)
    assert len(ds) == 2 * S and ds.shape == (H, W)
    item = ds[S + 1]
    assert set(item) == {"input", "target", "volume", "slice"}
    assert item["volume"] == "vol1" and item["slice"] == 1
    for key in ("input", "target"):
        assert item[key].shape == (1, H, W) and item[key].dtype == torch.float32
    target = _volume(1)[:, :, 1]
    np.testing.assert_array_equal(item["target"][0].numpy(), target)
    np.testing.assert_allclose(item["input"][0].numpy(), truncate_kspace(target, 8), atol=1e-6)
    assert not torch.allclose(item["input"], item["target"], atol=1e-2)  # really low-res
    ds.close()


def test_sr_dataset_pickles_and_batches(sr_root):
    ds = SRSliceDataset(sr_root, keep=(8, 6))
    _ = ds[0]  # opens a handle
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._handles == {}
    torch.testing.assert_close(clone[4]["input"], ds[4]["input"])
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["input"].shape == (4, 1, H, W) and batch["target"].shape == (4, 1, H, W)
    assert list(batch["slice"]) == [0, 1, 2, 0]
    ds.close()
    clone.close()


def test_sr_dataset_missing_key(tmp_path):
    with h5py.File(tmp_path / "bad.h5", "w") as fh:
        fh.create_dataset("kspace", data=np.zeros((4, 4, 1), np.float32))
    with pytest.raises(DataError, match=r"bad\.h5: missing key 'volfs'.*\['kspace'\]"):
        SRSliceDataset(tmp_path, keep=2)


def test_sr_dataset_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        SRSliceDataset(tmp_path / "nope")
    with pytest.raises(DataError, match="no .h5 volumes"):
        SRSliceDataset(tmp_path)


def test_sr_dataset_bad_keep_and_shapes(sr_root):
    with pytest.raises(ValueError, match=r"vol0\.h5: keep=64"):
        SRSliceDataset(sr_root, keep=64)
    write_volume(sr_root / "vol9.h5", np.zeros((H + 2, W, 1), np.float32),
                 {4: cartesian_mask((H + 2, W), 4)})
    with pytest.raises(DataError, match=r"vol9\.h5: slice size"):
        SRSliceDataset(sr_root, keep=8)


@pytest.mark.parametrize("in_memory", [False, True])
def test_sr_dataset_non_finite_slice(tmp_path, in_memory):
    vol = _volume(0)
    vol[2, 3, 1] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as fh:
        fh.create_dataset("volfs", data=vol)
    ds = SRSliceDataset(tmp_path, keep=8, in_memory=in_memory)
    assert torch.isfinite(ds[0]["input"]).all()
    with pytest.raises(DataError, match=r"nan\.h5: 'volfs' slice 1 contains NaN"):
        ds[1]
    ds.close()
