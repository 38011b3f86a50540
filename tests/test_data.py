import h5py
import numpy as np
import pytest
import torch
from conftest import smooth_volume
from torch.utils.data import DataLoader

from kdmri.data import SliceDataset, write_volume
from kdmri.errors import DataError
from kdmri.physics.fft import fft2, ifft2
from kdmri.physics.masks import cartesian_mask


def test_write_layout_and_values(tmp_path):
    vol = smooth_volume((32, 24, 3))
    mask = cartesian_mask((32, 24), 4, seed=4)
    path = write_volume(tmp_path / "v.h5", vol, {4: mask}, attrs={"source": "test"})
    with h5py.File(path) as fh:
        assert set(fh) == {"volfs", "img_volus_4x", "kspace_volus_4x", "mask_4x"}
        assert fh["volfs"].dtype == np.float32 and fh["kspace_volus_4x"].dtype == np.complex64
        k = fh["kspace_volus_4x"][()]
        for s in range(3):
            expected = np.fft.fft2(vol[:, :, s], norm="ortho") * mask
            np.testing.assert_allclose(k[:, :, s], expected, atol=1e-5)
            np.testing.assert_allclose(fh["img_volus_4x"][:, :, s], ifft2(expected).real, atol=1e-5)
        assert fh.attrs["source"] == "test"
    assert not list(tmp_path.glob("*.tmp"))


def test_dataset_items_and_loader(tiny_folder):
    ds = SliceDataset(tiny_folder, "4x")
    assert len(ds) == 5 and ds.shape == (32, 24)
    item = ds[4]
    assert item["volume"] == "vol_b" and item["slice"] == 1
    assert item["input"].shape == (1, 32, 24) and item["kspace"].dtype == torch.complex64
    # measured k-space of the target under the mask
    expected = fft2(item["target"].to(torch.complex64)) * item["mask"]
    assert torch.allclose(item["kspace"], expected, atol=1e-5)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["input"].shape == (2, 1, 32, 24) and batch["kspace"].shape == (2, 1, 32, 24)
    # in-memory gives the same items; pickling drops handles (worker processes)
    mem = SliceDataset(tiny_folder, 4, in_memory=True)
    assert torch.equal(mem[3]["target"], ds[3]["target"])
    import pickle

    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[0]["input"], ds[0]["input"])


def test_dataset_does_not_reopen_files(tiny_folder, monkeypatch):
    ds = SliceDataset(tiny_folder, 4)
    opened = []
    real = h5py.File
    monkeypatch.setattr(h5py, "File", lambda *a, **k: opened.append(a) or real(*a, **k))
    for i in range(len(ds)):
        ds[i]
    assert opened == []


def test_external_mask_file(tiny_folder, tmp_path_factory):
    from kdmri.physics.masks import save_mask

    p = save_mask(cartesian_mask((32, 24), 4, seed=4), tmp_path_factory.mktemp("m") / "m.npy")
    assert SliceDataset(tiny_folder, 4, mask=p)[0]["mask"].shape == (1, 32, 24)
    bad = save_mask(cartesian_mask((24, 32), 4), tmp_path_factory.mktemp("m") / "bad.npy")
    with pytest.raises(DataError, match="does not match"):
        SliceDataset(tiny_folder, 4, mask=bad)


def test_writer_errors(tmp_path):
    vol = smooth_volume((16, 16, 2))
    good = cartesian_mask((16, 16), 4)
    with pytest.raises(DataError, match=r"v\.h5.*does not match"):
        write_volume(tmp_path / "v.h5", vol, {4: cartesian_mask((16, 20), 4)})
    bad = vol.copy()
    bad[0, 0, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        write_volume(tmp_path / "v.h5", bad, {4: good})
    with pytest.raises(DataError, match="slices"):
        write_volume(tmp_path / "v.h5", vol[None], {4: good})
    assert not list(tmp_path.iterdir()), "no half-written output"


def test_dataset_errors(tmp_path, tiny_folder):
    with pytest.raises(DataError, match="not found"):
        SliceDataset(tmp_path / "nope", 4)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .h5"):
        SliceDataset(empty, 4)
    with pytest.raises(DataError, match="no data for acceleration 5x"):
        SliceDataset(tiny_folder, 5)
    # missing key
    broken = tmp_path / "broken"
    broken.mkdir()
    with h5py.File(broken / "x.h5", "w") as fh:
        fh["img_volus_4x"] = np.zeros((4, 4, 1), np.float32)
    with pytest.raises(DataError, match=r"x\.h5: missing key 'volfs'"):
        SliceDataset(broken, 4)
    # corrupt file
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "c.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match=r"c\.h5: not a readable HDF5"):
        SliceDataset(corrupt, 4)
    # NaN inside a stored file is caught when the slice is read
    nan_dir = tmp_path / "nan"
    nan_dir.mkdir()
    write_volume(nan_dir / "n.h5", smooth_volume((16, 16, 2)), {4: cartesian_mask((16, 16), 4)})
    with h5py.File(nan_dir / "n.h5", "a") as fh:
        fh["volfs"][0, 0, 1] = np.nan
    ds = SliceDataset(nan_dir, 4)
    ds[0]
    with pytest.raises(DataError, match=r"n\.h5: 'volfs' slice 1 contains NaN"):
        ds[1]
