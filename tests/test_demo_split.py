"""Voxel-level disjointness of the demo split, from the builder's own bookkeeping
(:func:`kdmri.data.demo.slice_plan`: the template voxels every slice is cut from)."""

from __future__ import annotations

import numpy as np
import pytest

from kdmri.data import demo

SHAPE = (96, 96, 94)  # the 2 mm template (load_template_2mm)


def _overlap(a: tuple[slice, slice, slice], b: tuple[slice, slice, slice]) -> bool:
    return all(max(x.start, y.start) < min(x.stop, y.stop) for x, y in zip(a, b))


def _forbidden(shape) -> tuple[slice, slice, slice]:
    """The validation slab extended by MARGIN slices on both sides, over the whole plane."""
    z0, z1 = demo.VAL_SLAB
    return slice(0, shape[0]), slice(0, shape[1]), slice(z0 - demo.MARGIN, z1 + demo.MARGIN)


def _check_plan(plan, shape) -> None:
    forbidden = _forbidden(shape)
    for name, cuts in plan["train"].items():
        for cut in cuts:
            assert not _overlap(cut.box, forbidden), f"train {name}: {cut} touches the slab"
    z0, z1 = demo.VAL_SLAB
    for cut in plan["validation"]["axial_val"]:
        assert z0 <= cut.box[2].start and cut.box[2].stop <= z1


def test_training_voxels_avoid_the_validation_slab_and_margin():
    assert demo.MARGIN >= 2  # the documented gap, in 2 mm slices
    plan = demo.slice_plan(SHAPE)
    assert {n.split("_")[0] for n in plan["train"]} == {"axial", "coronal", "sagittal"}
    _check_plan(plan, SHAPE)
    # every box is one voxel thick along its view axis and covers the other two fully,
    # apart from z (coronal and sagittal slices stop short of the slab)
    for cuts in plan["train"].values():
        for cut in cuts:
            assert cut.box[cut.axis].stop - cut.box[cut.axis].start == 1


def test_the_data_are_the_planned_boxes():
    """The bookkeeping describes the built data: every stored slice is its box, cut again
    independently here, and the volumes equal demo_volumes()."""
    vol = demo.load_template_2mm()
    assert vol.shape == SHAPE
    built = demo.demo_slices(vol)
    _check_plan({split: {name: cuts for name, (_, cuts) in volumes.items()}
                 for split, volumes in built.items()}, SHAPE)
    volumes = demo.demo_volumes()
    for split in built:
        for name, (images, cuts) in built[split].items():
            assert images.shape[-1] == len(cuts) > 0
            np.testing.assert_array_equal(volumes[split][name], images)
            for i in range(0, len(cuts), 5):
                raw = np.rot90(np.squeeze(vol[cuts[i].box], axis=cuts[i].axis))
                h, w = raw.shape
                top, left = (96 - h) // 2, (96 - w) // 2
                np.testing.assert_array_equal(images[top:top + h, left:left + w, i], raw)
                assert images[..., i].sum() == pytest.approx(raw.sum(), rel=1e-5)  # zero padding


@pytest.mark.parametrize("view", ["coronal", "sagittal"])
def test_a_slice_through_the_slab_is_caught(view):
    """The check fails on a plan whose coronal/sagittal slices cross the slab (margin 0)."""
    plan = demo.slice_plan(SHAPE)
    cut = plan["train"][f"{view}_inferior"][10]
    box = list(cut.box)
    box[2] = slice(0, SHAPE[2])
    plan["train"][f"{view}_inferior"][10] = demo.SliceCut(cut.axis, tuple(box))
    with pytest.raises(AssertionError, match="touches the slab"):
        _check_plan(plan, SHAPE)
