import json

import numpy as np
import pytest

from kdmri.data import SliceDataset, demo


def test_demo_build_split_is_spatially_disjoint(tmp_path):
    folder = demo.build_demo(tmp_path, accs=(4,), verbose=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["train_slices"] >= 250 and manifest["validation_slices"] >= 12
    train, val = SliceDataset(folder / "train", 4), SliceDataset(folder / "validation", 4)
    assert len(train) == manifest["train_slices"] and train.shape == (96, 96)
    # real anatomy, not a phantom: many distinct intensity levels, values in [0, 1]
    t = val[5]["target"].numpy()
    assert 0 <= t.min() and t.max() <= 1 and len(np.unique(t.round(3))) > 200
    # no validation slice appears among the training slices
    val_imgs = [val[i]["target"] for i in range(len(val))]
    for i in range(0, len(train), 7):
        tr = train[i]["target"]
        assert all(float((tr - v).abs().max()) > 0.05 for v in val_imgs)
    # the slab bookkeeping: training parts end MARGIN slices before/after the slab
    vol = demo.load_template_2mm()
    assert vol.shape[:2] == (96, 96)
    # re-running is a no-op unless asked to overwrite
    mtime = (folder / "train" / "demo_axial_inferior.h5").stat().st_mtime_ns
    demo.build_demo(tmp_path, accs=(4,), verbose=False)
    assert (folder / "train" / "demo_axial_inferior.h5").stat().st_mtime_ns == mtime


def test_preview_slices_of_every_volume(tiny_data):
    images = demo.preview_slices(tiny_data, per_volume=1)
    assert list(images) == ["train t1 [1]", "train t2 [1]", "validation v1 [0]"]
    assert all(img.shape == (32, 24) for img in images.values())
    two = demo.preview_slices(tiny_data, per_volume=2)  # at most 2: a 3-slice volume has 1 inner
    assert list(two) == ["train t1 [1]", "train t2 [1]", "validation v1 [0]", "validation v1 [1]"]
    with pytest.raises(ValueError, match="per_volume"):
        demo.preview_slices(tiny_data, per_volume=0)
