"""Shared fixtures: one device fixture (CPU, plus CUDA when present) and a tiny HDF5 folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from kdmri.data import write_volume
from kdmri.physics.masks import cartesian_mask

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


def smooth_volume(shape=(32, 24, 3), seed=0) -> np.ndarray:
    """A small smooth non-negative test volume in [0, 1]."""
    rng = np.random.default_rng(seed)
    h, w, s = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    vol = np.stack([np.exp(-((yy - 0.2 * rng.standard_normal()) ** 2 + xx**2) * (2 + i))
                    for i in range(s)], axis=-1)
    vol += 0.05 * rng.random(vol.shape)
    return (vol / vol.max()).astype(np.float32)


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


@pytest.fixture
def tiny_folder(tmp_path):
    """Two volumes of 32x24 with 3 and 2 slices, masks at 4x and 8x."""
    masks = {a: cartesian_mask((32, 24), a, seed=a) for a in (4, 8)}
    write_volume(tmp_path / "vol_a.h5", smooth_volume((32, 24, 3), 0), masks)
    write_volume(tmp_path / "vol_b.h5", smooth_volume((32, 24, 2), 1), masks)
    return tmp_path


@pytest.fixture
def tiny_data(tmp_path):
    """A dataset root with train/ (2 volumes, 6 slices) and validation/ (1 volume, 2 slices)
    of 32x24 images, masks at 4x."""
    masks = {4: cartesian_mask((32, 24), 4, seed=4)}
    root = tmp_path / "data"
    write_volume(root / "train" / "t1.h5", smooth_volume((32, 24, 3), 0), masks)
    write_volume(root / "train" / "t2.h5", smooth_volume((32, 24, 3), 1), masks)
    write_volume(root / "validation" / "v1.h5", smooth_volume((32, 24, 2), 2), masks)
    return root


@pytest.fixture
def tiny_cfg(tiny_data, tmp_path):
    from kdmri.config import Config

    return Config(dataset="tiny", acc="4x", data_root=str(tiny_data), epochs=2, batch_size=2,
                  lr_step=1, lr_gamma=0.5, experiments_root=str(tmp_path / "exp"), progress=False)


@pytest.fixture
def own_manifests_only(tmp_path_factory, monkeypatch):
    """The package's manifest replaced by an empty one, so that a test's own manifests (a tiny
    study published under the package's names, say) are the only ones read."""
    import kdmri.pretrained as pretrained

    empty = tmp_path_factory.mktemp("no-package-manifest") / "manifest.yaml"
    empty.write_text("checkpoints: {}\n")
    monkeypatch.setattr(pretrained, "MANIFEST", empty)
    monkeypatch.delenv(pretrained.MANIFEST_ENV, raising=False)
    return empty
