import numpy as np
import pytest

from kdmri.errors import ConfigError, DataError
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
    """Every committed mask exists, has the right size, and is regenerable bit for bit."""
    for name, shape in masks.DATASET_SHAPES.items():
        for acc in masks.ACCELERATIONS:
            m = masks.load_dataset_mask(name, acc, shape)
            assert np.array_equal(m, masks.dataset_mask(name, acc)), (
                f"{mask_path(name, acc)} differs from the generator (run `make masks`)")


# Measured on the reference KD-MRI masks (us_masks/<dataset>/mask_<acc>.npy of Bala93/KD-MRI):
# phase-encode axis, contiguous sampled band around DC, sampled fraction at 4x / 5x / 8x.
REFERENCE = {
    "cardiac": (0, (10, 12), {4: 0.247, 5: 0.200, 8: 0.120}),
    "mrbrain": (0, (10, 12), {4: 0.250, 5: 0.200, 8: 0.125}),
    "knee": (1, (29, 29), {4: 0.255, 5: 0.201, 8: 0.136}),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("acc", masks.ACCELERATIONS)
def test_committed_masks_follow_the_reference(name, acc):
    axis, (lo, hi), fractions = REFERENCE[name]
    m = masks.load_dataset_mask(name, acc)
    # orientation: cardiac / brain vary along H only (every row constant), knee along W only
    other = 1 - axis
    assert np.all(m == m.take([0], axis=other)), f"{name} {acc}x: not constant along axis {other}"
    assert not np.all(m == m.take([0], axis=axis)), f"{name} {acc}x: constant along axis {axis}"
    assert masks.phase_encode_axis(m) == axis
    # unshifted layout: DC (index 0) sampled and the band at both ends of the phase-encode axis
    lines = masks.line_profile(m)
    assert lines[0] and lines[1] and lines[-1]
    assert lo <= masks.centre_band(m) <= hi
    assert not lines[lines.size // 2 - 2 : lines.size // 2 + 3].all(), "band in the middle: shifted?"
    assert abs(masks.sampled_fraction(m) - fractions[acc]) <= 0.01


@pytest.mark.parametrize("name", ["demo", "calgary"])
def test_kdmri_only_masks_keep_columns(name):
    for acc in masks.ACCELERATIONS:
        m = masks.load_dataset_mask(name, acc)
        assert masks.phase_encode_axis(m) == 1 and m[0, 0] == 1
        assert abs(masks.sampled_fraction(m) - 1 / acc) <= 0.01


@pytest.mark.parametrize("axis", [0, 1])
def test_cartesian_axis_and_exact_centre(axis):
    shape = (60, 44)
    m = masks.cartesian_mask(shape, 4, seed=5, axis=axis, centre_lines=6, exact_centre=True,
                             fraction=0.3)
    assert masks.phase_encode_axis(m) == axis
    assert masks.centre_band(m) == 6
    assert masks.line_profile(m).sum() == round(shape[axis] * 0.3)
    rows = masks.cartesian_mask((60, 60), 4, seed=5, axis=0)
    cols = masks.cartesian_mask((60, 60), 4, seed=5, axis=1)
    assert np.array_equal(rows, cols.T)


def test_centre_band_and_axis_helpers():
    lines = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=np.float32)  # band: 0, 1 and 6, 7, 8
    assert masks.centre_band(np.tile(lines, (4, 1))) == 5
    assert masks.centre_band(np.tile(lines[:, None], (1, 3))) == 5
    assert masks.centre_band(np.tile(np.roll(lines, 4), (4, 1))) == 0  # DC not sampled
    assert masks.centre_band(np.ones((3, 5))) == 5
    with pytest.raises(DataError, match="not a line mask"):
        masks.phase_encode_axis(masks.gaussian_mask((32, 32), 4))


def test_registry():
    assert {"cartesian", "gaussian2d"} <= set(masks.mask_kinds())
    assert np.array_equal(masks.make_mask("cartesian", (40, 30), 4, seed=2, axis=0),
                          masks.cartesian_mask((40, 30), 4, seed=2, axis=0))
    assert np.array_equal(masks.make_mask("gaussian2d", (32, 32), 4, seed=1),
                          masks.gaussian_mask((32, 32), 4, seed=1))
    with pytest.raises(ConfigError, match=r"'radial'.*\['cartesian', 'gaussian2d'"):
        masks.make_mask("radial", (32, 32), 4)
    with pytest.raises(ConfigError, match="unknown option.*'axes'"):
        masks.make_mask("cartesian", (32, 32), 4, axes=0)

    @masks.register_mask("test-full")
    def full(shape, acc, seed=0):
        return np.ones(shape, dtype=np.float32)

    try:
        assert masks.make_mask("test-full", (4, 4), 4).sum() == 16
        with pytest.raises(ConfigError, match="already registered"):
            masks.register_mask("test-full")(lambda shape, acc, seed=0: None)
    finally:
        masks._GENERATORS.pop("test-full")


def test_register_mask_spec(tmp_path):
    spec = masks.MaskSpec((20, 16), axis=0, centre_lines={4: 4}, options={"exact_centre": True})
    try:
        assert masks.register_mask_spec("toy", spec) is spec
        assert masks.DATASET_SHAPES["toy"] == (20, 16) and masks.MASK_SPECS["toy"] is spec
        (path,) = masks.make_dataset_masks(["toy"], accs=(4,), root=tmp_path)
        m = masks.load_mask(path, (20, 16))
        assert masks.phase_encode_axis(m) == 0 and masks.centre_band(m) == 4
        with pytest.raises(ConfigError, match="already has a mask spec"):
            masks.register_mask_spec("toy", masks.MaskSpec((8, 8)))
        with pytest.raises(ConfigError, match="'radial'"):
            masks.register_mask_spec("toy2", masks.MaskSpec((8, 8), kind="radial"))
        with pytest.raises(TypeError):
            masks.MASK_SPECS["toy3"] = spec  # the table is read-only
    finally:
        masks.unregister_mask_spec("toy")
    assert "toy" not in masks.MASK_SPECS and "toy" not in masks.DATASET_SHAPES


def test_register_mask_shape_gives_a_default_row(tmp_path):
    try:
        masks.register_mask_shape("toyshape", (24, 20))
        masks.register_mask_shape("toyshape", (24, 20))  # the same size again is fine
        assert masks.MASK_SPECS["toyshape"].axis == 1 and masks.DATASET_SHAPES["toyshape"] == (24, 20)
        with pytest.raises(ConfigError, match="differs from its mask shape"):
            masks.register_mask_shape("toyshape", (20, 24))
        with pytest.raises(ValueError, match="differs from its mask shape"):
            masks.register_mask_shape("cardiac", (160, 160))
    finally:
        masks.unregister_mask_spec("toyshape")


def test_dataset_table_errors(tmp_path):
    with pytest.raises(ConfigError, match="'nope'"):
        masks.make_dataset_masks(["nope"], root=tmp_path)
    with pytest.raises(ConfigError, match="axis=2"):
        masks.cartesian_mask((8, 8), 4, axis=2)
    written = masks.make_dataset_masks(["cardiac"], accs=("8x",), root=tmp_path)
    assert written == [tmp_path / "cardiac" / "mask_8x.npy"]
    assert np.array_equal(np.load(written[0]), masks.load_dataset_mask("cardiac", 8))


def test_masks_command_accepts_acc_tags(monkeypatch):
    from kdmri.tools.cli import main

    calls = []
    monkeypatch.setattr(masks, "make_dataset_masks", lambda names, accs: calls.append((names, accs)) or [])
    assert main(["masks", "--dataset", "demo", "--acc", "4", "5x", "8"]) == 0
    assert calls == [(["demo"], (4, 5, 8))]


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
