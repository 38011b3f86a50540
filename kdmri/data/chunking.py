"""Per-slice HDF5 chunks: rewriting older files, and measuring what chunking buys.

:func:`kdmri.data.write_volume` stores every ``(H, W, S)`` array in chunks of one slice.
Files written contiguously (kdmri before per-slice chunking) hold the same values but
reading one slice ``[:, :, s]`` of them gathers ``H x W`` values that lie ``S`` apart on
disk. :func:`rechunk_folder` (``python -m kdmri rechunk --root datasets/knee``) rewrites
such files in place, atomically, after checking that the new file holds exactly the same
arrays and attributes; :func:`time_slice_reads` measures the difference.

A rewritten file keeps its file mode and each array's filters (compression, shuffle,
checksums) and fill value; arrays that are not slice stacks (masks) are copied as stored.
Links are left as links: :func:`rechunk_folder` skips every file it reaches through a
symbolic link (a linked file, or a file in a linked folder) and lists it in
:attr:`RechunkReport.links` -- rechunk the folder the link points into instead (a link's
target inside ``root`` is rewritten under its own name). :func:`rechunk_volume` given a
link rewrites the link's target and leaves the link.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from kdmri.data.volumes import FS_KEY, img_key, kspace_key, slice_chunks, write_volume
from kdmri.errors import DataError
from kdmri.io import TMP_SUFFIX, atomic_path


def _is_slice_stack(ds: h5py.Dataset) -> bool:
    return ds.ndim == 3


def is_slice_chunked(path: Path | str) -> bool:
    """True when every 3-D array of ``path`` is stored in chunks of one slice."""
    with h5py.File(path, "r") as fh:
        return all(ds.chunks == slice_chunks(ds.shape) for ds in fh.values()
                   if isinstance(ds, h5py.Dataset) and _is_slice_stack(ds))


def _same(a: h5py.File, b: h5py.File, path: Path) -> None:
    """:class:`DataError` unless ``a`` and ``b`` hold the same datasets, values and attrs."""
    if sorted(a.keys()) != sorted(b.keys()):
        raise DataError(f"{path}: rechunked copy has keys {sorted(b.keys())}, expected "
                        f"{sorted(a.keys())}; the original is kept")
    for key in a.keys():
        x, y = a[key], b[key]
        if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(
                x[()], y[()], equal_nan=x.dtype.kind in "fc"):
            raise DataError(f"{path}: rechunked '{key}' differs from the original; the "
                            "original is kept")
        if _filters(x) != _filters(y):
            raise DataError(f"{path}: rechunked '{key}' has filters {_filters(y)}, expected "
                            f"{_filters(x)} (compression); the original is kept")
        if set(x.attrs) != set(y.attrs):
            raise DataError(f"{path}: rechunked '{key}' lost attributes; the original is kept")
    for k in a.attrs:
        if k not in b.attrs or not np.array_equal(np.asarray(a.attrs[k]), np.asarray(b.attrs[k])):
            raise DataError(f"{path}: rechunked file attribute {k!r} differs; the original "
                            "is kept")


def _filters(ds: h5py.Dataset) -> list[tuple]:
    """The HDF5 filter pipeline of ``ds``: ``[(filter id, flags, options), ...]``."""
    plist = ds.id.get_create_plist()
    return [plist.get_filter(i)[:3] for i in range(plist.get_nfilters())]


def _copy(src: h5py.File, dst: h5py.File, key: str, path: Path) -> None:
    ds = src[key]
    if not isinstance(ds, h5py.Dataset):
        raise DataError(f"{path}: group '{key}' is not part of the KD-MRI layout; "
                        "file left as it is")
    if not _is_slice_stack(ds):
        src.copy(ds, dst, name=key)  # as stored: layout, filters, attributes
        return
    # the source's creation properties (filters, fill value) with one chunk per slice
    out = dst.create_dataset(key, data=ds[()], chunks=slice_chunks(ds.shape), maxshape=ds.maxshape,
                             dcpl=ds.id.get_create_plist())
    for k, v in ds.attrs.items():
        out.attrs[k] = v


def rechunk_volume(path: Path | str) -> bool:
    """Rewrite ``path`` with per-slice chunks if it is not stored so; returns True if it was.

    The copy is written to a temporary file (:mod:`kdmri.io`), compared array by array
    (values, dtypes, shapes, filters) and attribute by attribute with the original, and only
    then renamed over it with the original's file mode: an error at any point leaves the
    original untouched. A symbolic link stays a link: its target is rewritten.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    try:
        if is_slice_chunked(path):
            return False
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc
    with atomic_path(path) as tmp:
        with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for key in src.keys():
                _copy(src, dst, key, path)
        with h5py.File(path, "r") as a, h5py.File(tmp, "r") as b:
            _same(a, b, path)
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
    return True


@dataclass
class RechunkReport:
    """What :func:`rechunk_folder` did."""

    rewritten: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    links: list[Path] = field(default_factory=list)  # reached through a link: skipped


def rechunk_folder(root: Path | str) -> RechunkReport:
    """:func:`rechunk_volume` on every ``.h5`` below ``root`` (recursively, sorted), except
    those reached through a symbolic link (listed in the report's ``links``)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: folder not found (expected a prepared dataset such as "
                        "datasets/knee)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".h5", ".hdf5")
                   and not p.name.endswith(TMP_SUFFIX))
    if not files:
        raise DataError(f"{root}: no .h5 files below this folder")
    report, real_root = RechunkReport(), root.resolve()
    for path in files:
        if path.resolve() != real_root / path.relative_to(root):  # a link, or in a linked folder
            report.links.append(path)
        else:
            (report.rewritten if rechunk_volume(path) else report.unchanged).append(path)
    return report


def time_slice_reads(size: tuple[int, int] = (640, 368), n_slices: int = 32, reads: int = 50,
                     acc: str = "4x", seed: int = 0, folder: Path | str | None = None) -> dict:
    """Seconds per item read from disk, contiguous against per-slice chunked storage.

    Writes one synthetic ``(H, W, n_slices)`` volume both ways (:func:`write_volume`,
    one acceleration), then times reading ``reads`` random slices of the three arrays a
    training item needs (``volfs``, ``img_volus_<acc>``, ``kspace_volus_<acc>``), each file
    opened once as :class:`~kdmri.data.SliceDataset` does. The files are fresh, so the
    operating system's page cache usually holds them: this measures the HDF5 access
    pattern, not the disk; on a cold disk the gap is larger.

    Returns ``{"size", "slices", "reads", "contiguous_ms", "chunked_ms", "speedup",
    "contiguous_mb", "chunked_mb"}`` (ms per item, file sizes in MB).
    """
    rng = np.random.default_rng(seed)
    h, w = size
    vol = rng.random((h, w, n_slices), dtype=np.float32)
    mask = np.zeros((h, w), np.float32)
    mask[:, :: 4] = 1
    order = rng.integers(0, n_slices, size=reads)
    keys = (FS_KEY, img_key(acc), kspace_key(acc))
    res: dict = {"size": f"{h}x{w}", "slices": n_slices, "reads": reads}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for name, chunked in (("contiguous", False), ("chunked", True)):
            path = write_volume(Path(tmp) / f"{name}.h5", vol, {acc: mask}, chunked=chunked)
            with h5py.File(path, "r") as fh:
                start = time.perf_counter()
                for s in order:
                    for key in keys:
                        fh[key][:, :, int(s)]
                res[f"{name}_ms"] = 1e3 * (time.perf_counter() - start) / reads
            res[f"{name}_mb"] = path.stat().st_size / 1e6
    res["speedup"] = res["contiguous_ms"] / res["chunked_ms"]
    return res
