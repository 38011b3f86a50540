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
from kdmri.physics.fft import fft2c, ifft2c

Array = torch.Tensor | np.ndarray
Keep = int | tuple[int, int]


def _keep_pair(keep: Keep, shape: tuple[int, int]) -> tuple[int, int]:
    """Validate ``keep`` against an image size ``(H, W)``; return ``(kh, kw)``."""
    if isinstance(keep, (int, np.integer)) and not isinstance(keep, bool):
        pair = (int(keep), int(keep))
    elif (isinstance(keep, (tuple, list)) and len(keep) == 2
          and all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in keep)):
        pair = (int(keep[0]), int(keep[1]))
    else:
        raise ValueError(f"keep={keep!r}: expected an int or a pair of ints (kh, kw)")
    h, w = shape
    if not (0 < pair[0] <= h and 0 < pair[1] <= w):
        raise ValueError(f"keep={keep!r}: expected 0 < kh <= {h} and 0 < kw <= {w} "
                         f"for an image of size {(h, w)}")
    return pair


def central_block_mask(shape: tuple[int, int], keep: Keep) -> np.ndarray:
    """Boolean ``(H, W)`` mask, True on the central ``keep`` block of **centred** k-space.

    Args:
        shape: image size ``(H, W)``.
        keep: block size, an int (square) or ``(kh, kw)``; ``0 < kh <= H``, ``0 < kw <= W``.

    Returns:
        bool array ``(H, W)``; exactly ``kh * kw`` entries are True, the block around
        ``(H // 2, W // 2)`` (see the module docstring for the exact index range).
    """
    if len(shape) != 2:
        raise ValueError(f"shape={shape!r}: expected an image size (H, W)")
    h, w = int(shape[0]), int(shape[1])
    kh, kw = _keep_pair(keep, (h, w))
    mask = np.zeros((h, w), dtype=bool)
    r0, c0 = h // 2 - kh // 2, w // 2 - kw // 2
    mask[r0:r0 + kh, c0:c0 + kw] = True
    return mask


def _check_image(image: Array) -> tuple[int, int]:
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        raise TypeError(f"image: expected a numpy array or torch tensor, got {type(image).__name__}")
    if image.ndim < 2:
        raise ValueError(f"image: expected shape (..., H, W), got {tuple(image.shape)}")
    is_complex = torch.is_complex(image) if isinstance(image, torch.Tensor) else np.iscomplexobj(image)
    if is_complex:
        raise ValueError(f"image: expected a real image, got dtype {image.dtype}")
    return int(image.shape[-2]), int(image.shape[-1])


def truncate_kspace_complex(image: Array, keep: Keep) -> Array:
    """Complex low-resolution image: inverse of the central ``keep`` block of centred k-space.

    Args:
        image: real image ``(..., H, W)``, numpy array or torch tensor.
        keep: kept block size (int or ``(kh, kw)``).

    Returns:
        complex ``(..., H, W)`` of the same kind as ``image`` (complex128 for numpy; complex64
        or complex128 for torch, following the input precision). Its :func:`fft2c` is the
        input's inside :func:`central_block_mask` and zero outside.
    """
    h, w = _check_image(image)
    mask = central_block_mask((h, w), keep)
    if isinstance(image, np.ndarray):
        k = fft2c(image.astype(np.float64, copy=False))
        return ifft2c(k * mask)
    x = image if image.is_floating_point() else image.float()
    k = fft2c(x)
    return ifft2c(k * torch.from_numpy(mask).to(device=x.device))


def truncate_kspace(image: Array, keep: Keep = 64) -> Array:
    """Low-resolution image of the KD-MRI super-resolution experiment.

    Keeps the central ``keep`` block of the centred orthonormal k-space of ``image``, zero
    elsewhere, and returns the **magnitude** of the inverse transform at full size.

    Args:
        image: real image ``(..., H, W)``, numpy array or torch tensor.
        keep: kept block size, int (square) or ``(kh, kw)``; 64 for 256 x 256 in the paper.

    Returns:
        float32 ``(..., H, W)`` of the same kind (numpy/torch) and device as ``image``.
        With ``keep == (H, W)`` it is ``abs(image)``.

    Raises:
        ValueError: ``keep`` not positive or larger than the image, or ``image`` complex.
        TypeError: ``image`` is neither a numpy array nor a torch tensor.
    """
    low = truncate_kspace_complex(image, keep)
    if isinstance(low, np.ndarray):
        return np.abs(low).astype(np.float32)
    return low.abs().to(torch.float32)


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


# ---------------------------------------------------------------- notebook helpers


def validation_item(cfg, index: int | None = None) -> dict:
    """One super-resolution validation item of ``cfg`` as a batch of one: ``input`` (the
    low-resolution image) and ``target`` ``(1, 1, H, W)``, ``volume`` and ``slice`` lists.

    The slices are those :func:`kdmri.evaluation.evaluate.evaluate` uses for the ``sr-*`` stages
    (``max_val_slices`` applied); default: the middle one.
    """
    from torch.utils.data import default_collate

    from kdmri.training.engine import SR

    ds = SR.dataset(cfg, "validation")
    i = len(ds) // 2 if index is None else index
    if not -len(ds) <= i < len(ds):
        raise IndexError(f"index {i}: the validation set has {len(ds)} slices")
    return default_collate([ds[i]])


def attention_maps(model: torch.nn.Module, batch: dict, layers, mode: str = "sample") -> list[np.ndarray]:
    """KD-MRI attention maps (:func:`kdmri.distill.losses.attention_map`) of the named VDSR features
    (``"conv1"`` ...) on the first item of ``batch``, each an ``(H, W)`` numpy array."""
    from kdmri.distill.losses import attention_map

    model.eval()
    with torch.no_grad():
        x = batch["input"].to(next(model.parameters()).device)
        features = model(x, return_features=True).features
    h, w = x.shape[-2:]
    maps = []
    for name in layers:
        if name not in features:
            raise KeyError(f"layer {name!r}: not among the model's features {sorted(features)}")
        maps.append(attention_map(features[name][:1], mode)[0].reshape(h, w).cpu().numpy())
    return maps
