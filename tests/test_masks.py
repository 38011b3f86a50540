import numpy as np
import pytest

from kdmri.errors import DataError
from kdmri.paths import mask_path
from kdmri.physics import masks


@pytest.mark.parametrize("shape", [(150, 150), (240, 240), (640, 368), (96, 96), (33, 57)])
@pytest.mark.parametrize("acc", [4, 5, 8])
def test_cartesian_fraction_lines_and_centre(shape, acc):
    m = masks.cartesian_mask(shape, acc, seed=3)
    assert m.shape == shape and m.dtype == np.float32
    assert abs(masks.sampled_fraction(m) - 1 / acc) <= 0.01
    assert np.all(m == m[:1]), "whole phase-encode lines (columns)"
    # unshifted layout: DC column sampled, the low-frequency band at both ends of the axis
    assert m[0, 0] == 1 and m[0, -1] == 1
    centred = masks.cartesian_mask(shape, acc, seed=3, centred=True)
    assert np.array_equal(np.fft.ifftshift(centred), m)
    w = shape[1]
    assert centred[0, w // 2 - 1 : w // 2 + 2].all()


def test_cartesian_determinism_per_seed():
    a = masks.cartesian_mask((64, 80), 4, seed=1)
    assert np.array_equal(a, masks.cartesian_mask((64, 80), 4, seed=1))
    assert not np.array_equal(a, masks.cartesian_mask((64, 80), 4, seed=2))


@pytest.mark.parametrize("shape", [(64, 64), (48, 80)])
@pytest.mark.parametrize("acc", [4, 8])
def test_gaussian_mask(shape, acc):
    m = masks.gaussian_mask(shape, acc, seed=0)
    assert m.shape == shape
    assert abs(masks.sampled_fraction(m) - 1 / acc) <= 0.01
    assert m[0, 0] == 1  # DC sampled (unshifted)
    assert not np.all(m == m[:1])  # 2-D, not lines
    c = masks.gaussian_mask(shape, acc, seed=0, centred=True)
    h, w = shape
    centre = c[h // 2 - 2 : h // 2 + 3, w // 2 - 2 : w // 2 + 3]
    assert centre.all()
    assert np.array_equal(m, masks.gaussian_mask(shape, acc, seed=0))


def test_committed_masks_match_generator():
    """Every committed mask exists, has the right size and fraction, and is regenerable."""
    for name, shape in masks.DATASET_SHAPES.items():
        for acc in masks.ACCELERATIONS:
            m = masks.load_dataset_mask(name, acc, shape)
            assert abs(masks.sampled_fraction(m) - 1 / acc) <= 0.01
            expected = masks.cartesian_mask(shape, acc, seed=masks.default_seed(name, acc))
            assert np.array_equal(m, expected), f"{mask_path(name, acc)} differs from generator"


def test_save_load_and_errors(tmp_path):
    m = masks.cartesian_mask((20, 16), 4)
    p = masks.save_mask(m, tmp_path / "x" / "mask_4x.npy")
    assert np.array_equal(masks.load_mask(p), m)
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(DataError, match="does not match"):
        masks.load_mask(p, shape=(16, 20))
    with pytest.raises(DataError, match="not found"):
        masks.load_mask(tmp_path / "missing.npy")
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.npy"):
        masks.load_mask(bad)
    np.save(tmp_path / "nonbin.npy", np.full((4, 4), 0.5))
    with pytest.raises(DataError, match="zeros and ones"):
        masks.load_mask(tmp_path / "nonbin.npy")
