"""The KD-MRI HDF5 layout: one writer, one slice dataset.

One HDF5 file per volume (the reference pipeline's layout), slices on the **last** axis:

==========================  ===============  ==========================================
key                         dtype / shape    meaning
==========================  ===============  ==========================================
``volfs``                   float32 H,W,S    fully sampled image, intensities in [0, 1]
``img_volus_<acc>``         float32 H,W,S    zero-filled image (real part) at ``<acc>``
``kspace_volus_<acc>``      complex64 H,W,S  undersampled k-space, unshifted, orthonormal
``mask_<acc>``              float32 H,W      the mask used (written by kdmri; optional)
==========================  ===============  ==========================================

``<acc>`` is a tag such as ``4x``. :func:`write_volume` is the one writer every builder
(demo, converters) goes through; :class:`SliceDataset` serves every slice of every volume
in a folder without reopening files per item.

Storage: every ``(H, W, S)`` array is stored in HDF5 chunks of one slice, ``(H, W, 1)``,
uncompressed, so reading slice ``s`` (``[:, :, s]``) reads one contiguous chunk instead of
``H x W`` scattered values; the values and the logical layout are those of the reference
files. Files written contiguously by older versions read the same and can be rewritten
with ``python -m kdmri rechunk`` (:mod:`kdmri.data.chunking`).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from kdmri.config_checks import env_number
from kdmri.errors import DataError
from kdmri.io import atomic_path
from kdmri.paths import acc_tag
from kdmri.physics.fft import fft2, ifft2

FS_KEY = "volfs"


def img_key(acc: int | str) -> str:
    """Key of the zero-filled image at ``acc``: ``img_volus_4x``."""
    return f"img_volus_{acc_tag(acc)}"


def kspace_key(acc: int | str) -> str:
    """Key of the undersampled k-space at ``acc``: ``kspace_volus_4x``."""
    return f"kspace_volus_{acc_tag(acc)}"


def mask_key(acc: int | str) -> str:
    """Key of the stored mask at ``acc``: ``mask_4x``."""
    return f"mask_{acc_tag(acc)}"


def undersample_volume(volfs: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-filled images and undersampled k-space of an ``(H, W, S)`` volume.

    Returns ``(img_volus float32 (H, W, S), kspace_volus complex64 (H, W, S))``.
    """
    slices = np.moveaxis(volfs.astype(np.float64), -1, 0)  # (S, H, W)
    k = fft2(slices) * mask[None]
    img = ifft2(k).real
    return (np.moveaxis(img, 0, -1).astype(np.float32),
            np.moveaxis(k, 0, -1).astype(np.complex64))


#: Largest dataset (shape x item size) kdmri reads from a file, in GiB, unless the
#: environment variable :data:`MAX_VOLUME_ENV` says otherwise: a file's header is checked
#: against it before any read, so a small file declaring a huge volume cannot exhaust memory.
MAX_VOLUME_GIB = 4.0
MAX_VOLUME_ENV = "KDMRI_MAX_VOLUME_GIB"


def check_stored(path: Path | str, key: str, shape: tuple[int, ...], dtype,
                 complex_ok: bool = False) -> None:
    """:class:`DataError` unless a stored array (``key`` of file ``path``, as its header
    declares it) holds numbers -- real ones unless ``complex_ok`` (k-space) -- and fits in
    :data:`MAX_VOLUME_GIB`."""
    where = f"{path} ('{key}')" if key else str(path)
    dtype = np.dtype(dtype)
    if dtype.kind == "c" and not complex_ok:
        raise DataError(f"{where}: complex image data ({dtype}); expected a real magnitude image: "
                        "store its magnitude (numpy.abs) instead")
    if dtype.kind not in "biufc":
        raise DataError(f"{where}: values of type {dtype}; expected numbers")
    limit = env_number(MAX_VOLUME_ENV, MAX_VOLUME_GIB, unit="GiB")
    size = math.prod(int(n) for n in shape) * dtype.itemsize / 2**30
    if size > limit:
        raise DataError(f"{where}: declares shape {tuple(shape)} of {dtype} ({size:,.1f} GiB), over "
                        f"the limit of {limit:g} GiB per array ({MAX_VOLUME_ENV}); expected an MRI "
                        "volume (a corrupt file?)")


def read_stored(fh: h5py.File, path: Path | str, key: str, complex_ok: bool = False) -> np.ndarray:
    """Dataset ``key`` of an open HDF5 file, read after :func:`check_stored`."""
    ds = fh[key]
    if not isinstance(ds, h5py.Dataset):
        raise DataError(f"{path} ('{key}'): a group; expected an array")
    check_stored(path, key, ds.shape, ds.dtype, complex_ok)
    return ds[()]


def slice_chunks(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """HDF5 chunk shape of an ``(H, W, S)`` array: one slice per chunk."""
    return (int(shape[0]), int(shape[1]), 1)


def _check_mask(mask: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise DataError(f"{name}: mask shape {mask.shape} does not match image shape {tuple(shape)}")
    if not np.all(np.isfinite(mask)) or not np.all((mask == 0) | (mask == 1)):
        raise DataError(f"{name}: expected a mask of zeros and ones")
    return mask.astype(np.float32)


def write_volume(
    path: Path | str,
    volfs: np.ndarray,
    masks: Mapping[int | str, np.ndarray],
    attrs: Mapping[str, object] | None = None,
    chunked: bool = True,
) -> Path:
    """Write one volume in the KD-MRI layout, atomically.

    Args:
        path: output ``.h5`` file.
        volfs: fully sampled image volume ``(H, W, S)`` (a 2-D image counts as one slice),
            real and finite; callers normalise intensities (kdmri uses [0, 1] per volume).
        masks: ``{acc: mask (H, W)}`` in the unshifted layout, e.g. ``{4: m4, 8: m8}``.
        attrs: plain metadata stored as file attributes (source file, subject, ...).
        chunked: store each ``(H, W, S)`` array in chunks of one slice (default); ``False``
            writes them contiguously, as kdmri did before (the benchmark compares both).

    The file is written to ``<path>.tmp`` and renamed, so a crash never leaves a
    half-written volume under the final name.
    """
    path = Path(path)
    volfs = np.asarray(volfs)
    if volfs.ndim == 2:
        volfs = volfs[..., None]
    if volfs.ndim != 3:
        raise DataError(f"{path}: volfs must be (H, W, slices), got shape {volfs.shape}")
    if np.iscomplexobj(volfs):
        raise DataError(f"{path}: volfs must be a real image volume, got {volfs.dtype}")
    if not np.all(np.isfinite(volfs)):
        raise DataError(f"{path}: volfs contains NaN or infinite values")
    if not masks:
        raise DataError(f"{path}: no masks given; expected at least one acceleration")
    checked = {acc_tag(a): _check_mask(m, volfs.shape[:2], f"{path} mask {acc_tag(a)}")
               for a, m in masks.items()}
    chunks = slice_chunks(volfs.shape) if chunked else None
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        fh.create_dataset(FS_KEY, data=volfs.astype(np.float32), chunks=chunks)
        for tag, mask in checked.items():
            img, k = undersample_volume(volfs, mask)
            fh.create_dataset(img_key(tag), data=img, chunks=chunks)
            fh.create_dataset(kspace_key(tag), data=k, chunks=chunks)
            fh.create_dataset(mask_key(tag), data=mask)
        for key, value in (attrs or {}).items():
            fh.attrs[key] = value
    return path


def list_volumes(root: Path | str) -> list[Path]:
    """Sorted ``*.h5`` files of a folder; a clear error if it is missing or empty."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found (build the demo with `make demo-data`, "
                        "or convert a dataset with `python -m kdmri prepare`)")
    files = sorted(p for p in root.iterdir() if p.suffix in (".h5", ".hdf5") and p.is_file())
    if not files:
        raise DataError(f"{root}: no .h5 volumes in this folder")
    return files


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc


class H5Volumes(Dataset):
    """Base of the slice datasets: ``self.index`` lists ``(file, slice)``; every file is
    opened once per process and kept open. DataLoader workers (``num_workers > 0``) never
    use the parent's handles: they are dropped when the dataset is pickled (spawn) and
    when a forked worker first reads (the handles remember the process that opened them),
    so each worker opens its own."""

    _handles: dict[Path, h5py.File]
    index: list[tuple[Path, int]]

    def _handle(self, path: Path) -> h5py.File:
        if getattr(self, "_pid", None) != os.getpid():  # a forked worker: open our own
            self._handles = {}
            self._pid = os.getpid()
        fh = self._handles.get(path)
        if fh is None:
            fh = self._handles[path] = _open(path)
        return fh

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def __len__(self) -> int:
        return len(self.index)

    def close(self) -> None:
        """Close the open HDF5 handles (they reopen on the next item)."""
        handles = getattr(self, "_handles", {})  # absent if __init__ failed early
        for fh in handles.values():
            fh.close()
        handles.clear()

    def __del__(self) -> None:
        # best effort: at interpreter shutdown h5py may already be partly torn down
        with contextlib.suppress(Exception):
            self.close()


class SliceDataset(H5Volumes):
    """Every slice of every KD-MRI HDF5 volume in ``root`` at acceleration ``acc``.

    Each item is a dict of tensors::

        input   (1, H, W) float32    zero-filled image
        kspace  (1, H, W) complex64  undersampled k-space (unshifted)
        mask    (1, H, W) float32    the sampling mask
        target  (1, H, W) float32    fully sampled image
        volume  str                  file stem;   slice  int

    Args:
        root: folder of ``.h5`` volumes.
        acc: acceleration (``4``, ``"4x"``).
        mask: mask array or ``.npy`` path; default: the ``mask_<acc>`` stored in each file.
        in_memory: read every volume once at construction (fast for small data).

    Files are opened once and kept open (per worker process), never per item.
    """

    def __init__(self, root: Path | str, acc: int | str, mask: np.ndarray | str | Path | None = None,
                 in_memory: bool = False):
        self.root = Path(root)
        self.acc = acc_tag(acc)
        self.files = list_volumes(self.root)
        self._handles: dict[Path, h5py.File] = {}
        self._cache: dict[Path, dict[str, np.ndarray]] = {}
        self.index: list[tuple[Path, int]] = []
        self.shape: tuple[int, int] | None = None
        ikey, kkey = img_key(self.acc), kspace_key(self.acc)
        external = None
        if mask is not None:
            from kdmri.physics.masks import load_mask

            external = load_mask(mask) if isinstance(mask, (str, Path)) else np.asarray(mask, np.float32)
        self._masks: dict[Path, np.ndarray] = {}
        missing_acc = []
        for path in self.files:
            fh = self._handle(path)
            if FS_KEY not in fh:
                raise DataError(f"{path}: missing key '{FS_KEY}' (fully sampled volume); "
                                f"keys present: {sorted(fh.keys())}")
            if ikey not in fh or kkey not in fh:
                missing_acc.append(path)
                continue
            for key in (FS_KEY, ikey, kkey):
                check_stored(path, key, fh[key].shape, fh[key].dtype, complex_ok=key == kkey)
            shape = fh[FS_KEY].shape
            if len(shape) != 3:
                raise DataError(f"{path}: '{FS_KEY}' must be (H, W, slices), got {shape}")
            for key in (ikey, kkey):
                if fh[key].shape != shape:
                    raise DataError(f"{path}: '{key}' has shape {fh[key].shape}, expected {shape} "
                                    f"like '{FS_KEY}'")
            if self.shape is None:
                self.shape = tuple(shape[:2])
            elif tuple(shape[:2]) != self.shape:
                raise DataError(f"{path}: slice size {tuple(shape[:2])} differs from the other "
                                f"volumes' {self.shape}")
            if external is not None:
                m = external
            elif mask_key(self.acc) in fh:
                m = read_stored(fh, path, mask_key(self.acc))
            else:
                raise DataError(f"{path}: no '{mask_key(self.acc)}' stored and no mask given; pass "
                                f"mask=us_masks/<dataset>/mask_{self.acc}.npy")
            self._masks[path] = _check_mask(m, self.shape, f"{path} ({mask_key(self.acc)})")
            self.index.extend((path, s) for s in range(shape[2]))
            if in_memory:
                self._cache[path] = {k: fh[k][()] for k in (FS_KEY, ikey, kkey)}
        if missing_acc and len(missing_acc) == len(self.files):
            have = sorted(k[len("img_volus_"):] for k in self._handle(self.files[0]).keys()
                          if k.startswith("img_volus_"))
            raise DataError(f"{self.root}: no data for acceleration {self.acc} (expected keys "
                            f"'{ikey}' and '{kkey}'; {self.files[0].name} has {have or 'none'})")
        if missing_acc:
            raise DataError(f"{missing_acc[0]}: missing '{ikey}' / '{kkey}' while other volumes in "
                            f"{self.root} have acceleration {self.acc}")

    def _read(self, path: Path, key: str, s: int) -> np.ndarray:
        cached = self._cache.get(path)
        if cached is not None:
            return cached[key][:, :, s]
        return self._handle(path)[key][:, :, s]

    def __getitem__(self, i: int) -> dict:
        path, s = self.index[i]
        target = self._read(path, FS_KEY, s)
        zf = self._read(path, img_key(self.acc), s)
        k = self._read(path, kspace_key(self.acc), s)
        for name, arr in (("volfs", target), ("img_volus", zf), ("kspace_volus", k)):
            if not np.all(np.isfinite(arr)):
                raise DataError(f"{path}: '{name}' slice {s} contains NaN or infinite values")
        return {
            "input": torch.from_numpy(np.ascontiguousarray(zf, np.float32))[None],
            "kspace": torch.from_numpy(np.ascontiguousarray(k, np.complex64))[None],
            "mask": torch.from_numpy(self._masks[path])[None],
            "target": torch.from_numpy(np.ascontiguousarray(target, np.float32))[None],
            "volume": path.stem,
            "slice": s,
        }
