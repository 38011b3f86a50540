"""Per-slice HDF5 chunks: same values, rechunking older files, DataLoader workers."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from conftest import smooth_volume
from torch.utils.data import DataLoader

from kdmri.data import SliceDataset, write_volume
from kdmri.data.chunking import is_slice_chunked, rechunk_folder, rechunk_volume, time_slice_reads
from kdmri.errors import DataError
from kdmri.physics.masks import cartesian_mask
from kdmri.tools.cli import main


def contents(path):
    with h5py.File(path, "r") as fh:
        return {k: fh[k][()] for k in fh}, dict(fh.attrs)


def assert_same(a, b):
    (da, aa), (db, ab) = a, b
    assert da.keys() == db.keys() and aa.keys() == ab.keys()
    for k in da:
        assert da[k].dtype == db[k].dtype and np.array_equal(da[k], db[k]), k
    for k in aa:
        assert np.array_equal(aa[k], ab[k]), k


@pytest.fixture
def legacy(tmp_path):
    """Two contiguous (pre-chunking) volumes and their chunked twins."""
    masks = {4: cartesian_mask((32, 24), 4, seed=4), 8: cartesian_mask((32, 24), 8, seed=8)}
    for i, name in enumerate(("train/a.h5", "validation/b.h5")):
        vol = smooth_volume((32, 24, 3), seed=i)
        write_volume(tmp_path / "old" / name, vol, masks, {"subject": f"s{i}"}, chunked=False)
        write_volume(tmp_path / "new" / name, vol, masks, {"subject": f"s{i}"})
    return tmp_path


def test_chunks_are_one_slice_and_values_are_unchanged(legacy):
    with h5py.File(legacy / "new/train/a.h5") as fh:
        assert fh["volfs"].chunks == (32, 24, 1) and fh["kspace_volus_8x"].chunks == (32, 24, 1)
        assert fh["volfs"].compression is None and fh["mask_4x"].chunks is None
    with h5py.File(legacy / "old/train/a.h5") as fh:
        assert fh["volfs"].chunks is None
    assert not is_slice_chunked(legacy / "old/train/a.h5")
    assert_same(contents(legacy / "old/train/a.h5"), contents(legacy / "new/train/a.h5"))


def test_rechunk_rewrites_old_files_with_the_same_content(legacy, capsys):
    before = {p: contents(p) for p in sorted((legacy / "old").rglob("*.h5"))}
    assert main(["rechunk", "--root", str(legacy / "old")]) == 0
    assert "rewrote 2 file(s), 0 already" in capsys.readouterr().out
    for path, old in before.items():
        assert is_slice_chunked(path)
        assert_same(old, contents(path))
    again = rechunk_folder(legacy / "old")
    assert again.rewritten == [] and len(again.unchanged) == 2
    assert not list(legacy.rglob("*.tmp"))


def test_rechunk_keeps_the_original_when_the_copy_differs(legacy, monkeypatch):
    path = legacy / "old/train/a.h5"
    blob = path.read_bytes()
    real = h5py.Group.create_dataset

    def lossy(self, name, data=None, **kw):  # a broken copy: one value changed
        if name == "volfs":
            data = np.array(data)
            data[0, 0, 0] += 1
        return real(self, name, data=data, **kw)

    monkeypatch.setattr(h5py.Group, "create_dataset", lossy)
    with pytest.raises(DataError, match=r"a\.h5: rechunked 'volfs' differs.*original is kept"):
        rechunk_volume(path)
    assert path.read_bytes() == blob and not list(legacy.rglob("*.tmp"))
    with pytest.raises(DataError, match="folder not found"):
        rechunk_folder(legacy / "nope")


def test_loader_workers_read_the_same_items(legacy):
    ds = SliceDataset(legacy / "new/train", "4x")
    first = ds[0]  # the parent holds open handles when the workers fork
    direct = [ds[i]["target"] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=1, num_workers=2)
    got = [b["target"][0] for b in loader]
    assert len(got) == len(direct) and all(torch.equal(a, b) for a, b in zip(got, direct))
    assert torch.equal(ds[0]["input"], first["input"])  # the parent's handles still work
    inherited = dict(ds._handles)
    ds._pid = -1  # what a forked worker sees: handles opened by another process
    ds[0]
    assert ds._handles and all(ds._handles[p] is not inherited[p] for p in ds._handles)


def test_slice_read_timing_figure(tmp_path):
    res = time_slice_reads(size=(64, 48), n_slices=8, reads=5, folder=tmp_path)
    assert res["size"] == "64x48" and res["reads"] == 5
    assert res["contiguous_ms"] > 0 and res["chunked_ms"] > 0
    assert res["speedup"] == pytest.approx(res["contiguous_ms"] / res["chunked_ms"])
    assert res["chunked_mb"] == pytest.approx(res["contiguous_mb"], rel=0.2)
    assert not list(tmp_path.iterdir())


def test_rechunk_keeps_links_compression_and_file_mode(tmp_path, capsys):
    """Compressed, shuffled, checksummed arrays stay so (chunked per slice now); the file
    mode stays; a linked file stays a link and is not rewritten (listed as skipped)."""
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    vol = smooth_volume((32, 24, 3), seed=0)
    for path in (root / "train" / "a.h5", outside / "c.h5"):
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as fh:
            fh.create_dataset("volfs", data=vol, chunks=(8, 8, 3), compression="gzip",
                              compression_opts=7, shuffle=True, fletcher32=True)
            fh.create_dataset("mask_4x", data=cartesian_mask((32, 24), 4), compression="lzf")
            fh["volfs"].attrs["unit"] = "a.u."
        path.chmod(0o640)
    (root / "train" / "c.h5").symlink_to(outside / "c.h5")  # a split's link to a volume
    (root / "validation").symlink_to(outside, target_is_directory=True)  # a linked folder: not entered
    blob = (outside / "c.h5").read_bytes()
    assert main(["rechunk", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "rewrote 1 file(s), 0 already" in out and "left 1 linked file(s) as links" in out
    a = root / "train" / "a.h5"
    assert a.stat().st_mode & 0o777 == 0o640 and is_slice_chunked(a)
    with h5py.File(a) as fh:
        ds = fh["volfs"]
        assert (ds.chunks, ds.compression, ds.compression_opts) == ((32, 24, 1), "gzip", 7)
        assert ds.shuffle and ds.fletcher32 and ds.attrs["unit"] == "a.u."
        assert np.array_equal(ds[()], vol.astype(ds.dtype))
        assert fh["mask_4x"].compression == "lzf"
    link = root / "train" / "c.h5"
    assert link.is_symlink() and link.resolve() == (outside / "c.h5").resolve()
    assert (outside / "c.h5").read_bytes() == blob  # untouched
    report = rechunk_folder(root)
    assert report.rewritten == [] and report.links == [link]
    assert rechunk_volume(link) is True  # asked by name: the target is rewritten, the link stays
    assert link.is_symlink() and is_slice_chunked(outside / "c.h5")
    assert (outside / "c.h5").stat().st_mode & 0o777 == 0o640
