"""Orthonormal 2-D Fourier transforms over the last two axes, in two layouts.

* **unshifted** (FFT-native): DC at index [0, 0]; the reference KD-MRI masks and k-space
  are stored like this, so the fully sampled low-frequency band sits at both ends of the
  phase-encode axis. ``fft2`` / ``ifft2``.
* **centred**: DC in the middle of the array, as fastMRI stores k-space.
  ``fft2c`` / ``ifft2c``.

All functions accept torch tensors (real or complex, any leading shape ``(..., H, W)``)
and numpy arrays (returning the same kind). Normalisation is ``"ortho"`` throughout, so
Parseval holds: ``sum |x|^2 == sum |F x|^2``.
"""

from __future__ import annotations

import numpy as np
import torch

Array = torch.Tensor | np.ndarray

_DIMS = (-2, -1)


def fft2(x: Array) -> Array:
    """Orthonormal 2-D DFT of ``(..., H, W)``, unshifted layout (DC at [0, 0])."""
    if isinstance(x, np.ndarray):
        return np.fft.fft2(x, axes=_DIMS, norm="ortho")
    return torch.fft.fft2(x, dim=_DIMS, norm="ortho")


def ifft2(k: Array) -> Array:
    """Inverse of :func:`fft2`: complex image of ``(..., H, W)`` k-space, unshifted layout."""
    if isinstance(k, np.ndarray):
        return np.fft.ifft2(k, axes=_DIMS, norm="ortho")
    return torch.fft.ifft2(k, dim=_DIMS, norm="ortho")


def fftshift(x: Array) -> Array:
    """Move the DC term from [0, 0] to the centre of the last two axes."""
    if isinstance(x, np.ndarray):
        return np.fft.fftshift(x, axes=_DIMS)
    return torch.fft.fftshift(x, dim=_DIMS)


def ifftshift(x: Array) -> Array:
    """Inverse of :func:`fftshift` (move the centre back to [0, 0])."""
    if isinstance(x, np.ndarray):
        return np.fft.ifftshift(x, axes=_DIMS)
    return torch.fft.ifftshift(x, dim=_DIMS)


def fft2c(x: Array) -> Array:
    """Orthonormal 2-D DFT with centred image and centred k-space (fastMRI convention)."""
    return fftshift(fft2(ifftshift(x)))


def ifft2c(k: Array) -> Array:
    """Inverse of :func:`fft2c`."""
    return fftshift(ifft2(ifftshift(k)))


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """Complex ``(B, C, H, W)`` -> real ``(B, 2C, H, W)`` with [real, imag] per channel."""
    if not torch.is_complex(x):
        raise TypeError(f"complex_to_channels: expected a complex tensor, got {x.dtype}")
    stacked = torch.stack((x.real, x.imag), dim=2)  # (B, C, 2, H, W)
    return stacked.flatten(1, 2)


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """Real ``(B, 2C, H, W)`` with [real, imag] pairs -> complex ``(B, C, H, W)``."""
    if x.shape[1] % 2:
        raise ValueError(f"channels_to_complex: expected an even channel count, got {x.shape[1]}")
    b, c2, h, w = x.shape
    pairs = x.reshape(b, c2 // 2, 2, h, w)
    return torch.complex(pairs[:, :, 0], pairs[:, :, 1])


def undersample(image: Array, mask: Array) -> Array:
    """Measured k-space of ``image`` under an unshifted ``mask``: ``mask * F(image)``."""
    return fft2(image) * mask


def zero_filled(kspace_us: Array) -> Array:
    """Zero-filled reconstruction: real part of the inverse DFT of unshifted k-space.

    The reference pipeline feeds the real part (images are real, so the imaginary part is
    aliasing only); use ``abs`` of :func:`ifft2` if a magnitude image is wanted.
    """
    return ifft2(kspace_us).real
