"""Forward operators of the two problems kdmri solves, behind one interface.

* :class:`CartesianUndersampling` (reconstruction): ``A x = m * F x`` with the
  orthonormal unshifted 2-D DFT ``F`` and a line mask ``m`` held as a buffer; its adjoint
  ``A^H y = F^-1 (m * y)``; and the data-consistency step of the DC-CNN
  (:func:`data_consistency`).
* :class:`KspaceTruncation` (super-resolution, the KD-MRI extension): ``A x`` keeps the
  central block of the **centred** k-space; the network input is the magnitude of
  ``A^H A x`` at full size (:func:`truncate_kspace`).

Both have ``forward`` (image -> measurements), ``adjoint`` (measurements -> image) and
``degrade`` (image -> the network input), so that reconstruction vs super-resolution is a
choice of operator. Shapes: images ``(..., H, W)``; k-space complex ``(..., H, W)``.

Super-resolution layout: k-space here is centred (:func:`kdmri.physics.fft.fft2c`), DC at
``(H // 2, W // 2)``. The kept block of size ``(kh, kw)`` spans rows
``H // 2 - kh // 2 .. H // 2 - kh // 2 + kh - 1`` (likewise for columns), so an even block
keeps one more negative than positive frequency, as a centre crop of ``fftshift``-ed
k-space does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kdmri.physics.fft import fft2, fft2c, ifft2, ifft2c

# ------------------------------------------------------------------ reconstruction


def _mask_as_batch(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcastable ``(B or 1, 1, H, W)`` real mask on the device/dtype of ``like``."""
    if mask.dim() == 2:
        mask = mask[None, None]
    elif mask.dim() == 3:
        mask = mask[:, None]
    elif mask.dim() != 4:
        raise ValueError(f"mask: expected (H, W), (B, H, W) or (B, 1, H, W), got {tuple(mask.shape)}")
    if mask.shape[-2:] != like.shape[-2:]:
        raise ValueError(
            f"mask: spatial shape {tuple(mask.shape[-2:])} does not match image {tuple(like.shape[-2:])}"
        )
    return mask.to(device=like.device, dtype=like.real.dtype if like.is_complex() else like.dtype)


def data_consistency(x: torch.Tensor, kspace_us: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``Re F^-1[ m * k_us + (1 - m) * F(x) ]`` for a real image batch ``x`` ``(B, 1, H, W)``.

    Where ``m == 1`` the measured samples replace the network's; elsewhere the network's
    k-space is kept. ``F`` is the orthonormal unshifted 2-D DFT. The FFTs run in the
    precision of ``kspace_us`` (complex64) whatever the dtype of ``x`` (e.g. bf16 under
    autocast); the result has the dtype of ``x``.
    """
    if not torch.is_complex(kspace_us):
        raise TypeError(f"kspace_us: expected a complex tensor, got {kspace_us.dtype}")
    if kspace_us.shape[-2:] != x.shape[-2:]:
        raise ValueError(
            f"kspace_us: shape {tuple(kspace_us.shape)} does not match image {tuple(x.shape)}"
        )
    m = _mask_as_batch(mask, x)
    k_pred = fft2(x.to(kspace_us.dtype))
    k = m * kspace_us + (1 - m) * k_pred
    return ifft2(k).real.to(x.dtype)


class CartesianUndersampling(nn.Module):
    """``A x = m * F x`` for a fixed mask ``m`` ``(H, W)`` (unshifted layout, values {0, 1}).

    The mask is a buffer (it moves with ``.to(device)``). ``forward`` and ``adjoint`` are
    adjoint to each other (``<A x, y> = <x, A^H y>``); ``degrade`` gives the zero-filled
    image (the DC-CNN input) and ``data_consistency`` the DC layer's step.
    """

    def __init__(self, mask: torch.Tensor | np.ndarray):
        super().__init__()
        mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        if mask.dim() != 2:
            raise ValueError(f"mask: expected (H, W), got {tuple(mask.shape)}")
        self.register_buffer("mask", mask.to(torch.float32))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Undersampled k-space ``m * F x`` (complex)."""
        return self.mask * fft2(image.to(torch.complex64) if not image.is_complex() else image)

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """``F^-1 (m * y)`` (complex image)."""
        return ifft2(self.mask * kspace)

    def degrade(self, image: torch.Tensor) -> torch.Tensor:
        """Zero-filled magnitude image ``|A^H A x|`` (the network input)."""
        return self.adjoint(self.forward(image)).abs()

    def data_consistency(self, x: torch.Tensor, kspace_us: torch.Tensor) -> torch.Tensor:
        """:func:`data_consistency` with this operator's mask."""
        return data_consistency(x, kspace_us, self.mask)


# ------------------------------------------------------------------ super-resolution

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


class KspaceTruncation(nn.Module):
    """``A x``: the central ``keep`` block of the centred k-space of ``x`` (zero elsewhere).

    ``degrade`` is the super-resolution network input, :func:`truncate_kspace`;
    ``forward`` and ``adjoint`` are adjoint to each other (the block mask is a projection).
    """

    def __init__(self, shape: tuple[int, int], keep: Keep = 64):
        super().__init__()
        self.keep = keep
        self.register_buffer("block", torch.from_numpy(central_block_mask(shape, keep)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.to(torch.complex64) if not image.is_complex() else image
        return fft2c(x) * self.block

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        return ifft2c(kspace * self.block)

    def degrade(self, image: Array) -> Array:
        return truncate_kspace(image, self.keep)
