"""MRI super-resolution data (the KD-MRI extension): k-space truncation and a slice dataset.

The low-resolution input of the KD-MRI super-resolution experiment keeps only the central
block of the centred k-space (64 x 64 of a 256 x 256 image in the paper), sets the rest
to zero and takes the magnitude of the inverse transform at full size. Input and target
therefore have the same shape, and the network (VDSR) learns the missing high
frequencies.

Layout: k-space here is **centred** (:func:`kdmri.physics.fft.fft2c`), DC at index
``(H // 2, W // 2)``. The kept block of size ``(kh, kw)`` spans rows
``H // 2 - kh // 2 .. H // 2 - kh // 2 + kh - 1`` (likewise for columns), so an even block
keeps one more negative than positive frequency, as a centre crop of ``fftshift``-ed
k-space does.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from kdmri.data import FS_KEY, H5Volumes, list_volumes
from kdmri.errors import DataError
from kdmri.physics.operators import (  # noqa: F401  (the SR input, re-exported for readers)
    Keep,
    _keep_pair,
    central_block_mask,
    truncate_kspace,
    truncate_kspace_complex,
)


class SRSliceDataset(H5Volumes):
    """Every slice of every KD-MRI HDF5 volume in ``root``, as a super-resolution pair.

    Only the fully sampled ``volfs`` key is read; the low-resolution input is made on the
    fly by :func:`truncate_kspace` (or once per volume with ``in_memory=True``). Each item
    is a dict::

        input   (1, H, W) float32  low-resolution image (magnitude, full size)
        target  (1, H, W) float32  fully sampled image
        volume  str                file stem;   slice  int

    Args:
        root: folder of ``.h5`` volumes (see :mod:`kdmri.data`); all slices the same size.
        keep: kept centred k-space block, int or ``(kh, kw)`` (64 in the paper, for 256).
        in_memory: read every volume and compute its low-resolution slices once at
            construction (fast for small data).

    Files are opened once and kept open (per worker process), never per item; the handles
    are dropped when the dataset is pickled to DataLoader workers.
    """

    def __init__(self, root: Path | str, keep: Keep = 64, in_memory: bool = False):
        self.root = Path(root)
        self.keep = keep
        self.files = list_volumes(self.root)
        self._handles: dict[Path, h5py.File] = {}
        self._cache: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
        self.index: list[tuple[Path, int]] = []
        self.shape: tuple[int, int] | None = None
        for path in self.files:
            fh = self._handle(path)
            if FS_KEY not in fh:
                raise DataError(f"{path}: missing key '{FS_KEY}' (fully sampled volume); "
                                f"keys present: {sorted(fh.keys())}")
            shape = fh[FS_KEY].shape
            if len(shape) != 3:
                raise DataError(f"{path}: '{FS_KEY}' must be (H, W, slices), got {shape}")
            if self.shape is None:
                self.shape = (int(shape[0]), int(shape[1]))
                try:
                    _keep_pair(keep, self.shape)
                except ValueError as exc:
                    raise ValueError(f"{path}: {exc}") from None
            elif tuple(shape[:2]) != self.shape:
                raise DataError(f"{path}: slice size {tuple(shape[:2])} differs from the other "
                                f"volumes' {self.shape}")
            self.index.extend((path, s) for s in range(shape[2]))
            if in_memory:
                vol = np.moveaxis(fh[FS_KEY][()], -1, 0)  # (S, H, W)
                # each slice is transformed on its own: a non-finite slice spoils only
                # itself and is reported when that item is read
                with np.errstate(all="ignore"):
                    low = truncate_kspace(vol, keep)
                self._cache[path] = (vol.astype(np.float32), low)

    def __getitem__(self, i: int) -> dict:
        path, s = self.index[i]
        cached = self._cache.get(path)
        target = cached[0][s] if cached is not None else self._handle(path)[FS_KEY][:, :, s]
        if not np.all(np.isfinite(target)):
            raise DataError(f"{path}: '{FS_KEY}' slice {s} contains NaN or infinite values")
        low = cached[1][s] if cached is not None else truncate_kspace(target, self.keep)
        return {
            "input": torch.from_numpy(np.ascontiguousarray(low, np.float32))[None],
            "target": torch.from_numpy(np.ascontiguousarray(target, np.float32))[None],
            "volume": path.stem,
            "slice": s,
        }
