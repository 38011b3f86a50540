"""From an :class:`~kdmri.data.acquisitions.registry.Acquisition` to a network's inputs and back.

**Phase policy** (docs/ACQUISITIONS.md). kdmri's networks are real-valued: trained on
magnitude images, whose k-space is that of a real image, with a data-consistency (DC) step
``Re F^-1[m k + (1 - m) F x]`` inside the network.

* **Magnitude images** (DICOM, NIfTI): the k-space is made from the real image
  (retrospective), so the network runs exactly as in training, DC included.
* **Complex k-space** (fastMRI, ISMRMRD): the phase is taken out before the network and put
  back after it. A smooth phase ``phi`` is estimated from the fully sampled centre band of
  the measured columns (the low-resolution image, as homodyne / phase-constrained methods
  do); the zero-filled image ``z = ifft2c(m k) e^{-i phi}`` is then nearly real. The network
  sees ``Re z`` (as in training, where it sees the real part of the zero-filled image) and its
  DC uses ``m F z``: exact for a constant phase, approximate (the phase ramp mixes
  neighbouring frequencies) for a smooth one. Afterwards the measured samples are put back
  **exactly**, in complex form: ``x = net e^{i phi}``, ``out = |ifft2c(m k + (1 - m)
  fft2c(x))|`` (:func:`complex_dc`): the network supplies the missing frequencies'
  magnitude, ``phi`` their phase. The output is the magnitude, centre-cropped; the
  baseline is fastMRI's zero-filled magnitude ``|ifft2c(m k)|``. No centre band (the DC
  column not measured): one-line error.
* A super-resolution checkpoint (magnitude in, magnitude out) refuses complex k-space with
  one line instead of dropping the phase silently.

Layouts: acquisitions are ``(S, H, W)`` and centred (fastMRI); the network side is kdmri's
``(H, W, S)`` with unshifted masks and k-space. The shift between the two is
``numpy.fft.fftshift`` / ``ifftshift`` of the mask (tested both ways).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kdmri.data.acquisitions.registry import Acquisition
from kdmri.data.fit_size import fit_to_size
from kdmri.data.volumes import undersample_volume
from kdmri.datasets.rules import normalise_volume
from kdmri.errors import ConfigError, DataError
from kdmri.physics.fft import fft2, fft2c, ifft2c

MaskFor = Callable[[tuple[int, int]], tuple[np.ndarray, str]]


def to_centred(mask: np.ndarray) -> np.ndarray:
    """A kdmri (unshifted, DC at [0, 0]) mask in fastMRI's centred layout (DC at the middle)."""
    return np.fft.fftshift(mask)


def to_unshifted(mask: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_centred` (also right for odd sizes)."""
    return np.fft.ifftshift(mask)


def complex_dc(magnitude: np.ndarray, phase_from: np.ndarray, measured: np.ndarray,
               mask: np.ndarray) -> np.ndarray:
    """Complex image whose centred k-space is ``measured`` where ``mask`` is 1 and that of
    ``magnitude * exp(i angle(phase_from))`` elsewhere. Shapes ``(..., H, W)``; centred.
    ``phase_from`` is any complex array carrying the phase (e.g. ``exp(i phi)``)."""
    x = magnitude * np.exp(1j * np.angle(phase_from))
    return ifft2c(mask * measured + (1 - mask) * fft2c(x))


def _slices_last(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, 0, -1))


class AcquisitionInputs:
    """The network's inputs (``zf``, ``kspace``, ``mask`` as the reconstruct tool's) and
    :meth:`finish`, which maps the network's output back to the acquisition."""

    def __init__(self, acq: Acquisition, zf, kspace, mask, reference, scale, mask_note,
                 complex_data=None):
        self.acq, self.zf, self.kspace, self.mask = acq, zf, kspace, mask
        self.reference, self.scale, self.mask_note = reference, scale, mask_note
        self.complex_data = complex_data  # (phase, measured, centred mask, |zero-filled|)
        self.note, self.attrs = acq.note, dict(acq.attrs, format=acq.format, note=acq.note)

    def _crop(self, vol: np.ndarray | None) -> np.ndarray | None:
        if vol is None or self.acq.crop is None:
            return vol
        return fit_to_size(vol, self.acq.crop).astype(np.float32)

    def finish(self, net: np.ndarray, base: np.ndarray):
        """``(network, baseline, reference)`` ``(h, w, S)`` in the acquisition's units,
        cropped; for complex data after the complex data consistency (module docstring)."""
        ref = None if self.reference is None else self.reference * self.scale
        if self.complex_data is None:
            return net * self.scale, base * self.scale, self._crop(ref)
        phase, measured, m_c, zf_mag = self.complex_data
        out = np.abs(complex_dc(np.moveaxis(net, -1, 0) * self.scale, phase, measured, m_c))
        return (self._crop(_slices_last(out)), self._crop(zf_mag * self.scale), self._crop(ref))

    def for_h5(self, vol: np.ndarray) -> np.ndarray:
        """fastMRI's submission layout: ``(slices, h, w)`` float32."""
        return np.ascontiguousarray(np.moveaxis(vol, -1, 0), dtype=np.float32)


def acquisition_inputs(acq: Acquisition, mask_for: MaskFor, sr: bool = False,
                       mask_given: bool = False) -> AcquisitionInputs:
    """Network inputs for ``acq``; ``mask_for(shape) -> (unshifted mask, note)`` gives the
    retrospective mask of fully sampled data. Intensities are divided by the maximum of the
    fully sampled magnitude (images) or of the zero-filled magnitude (k-space)."""
    if acq.mask is not None and mask_given:
        raise ConfigError(f"--mask: {acq.path} is already undersampled (it holds its measured "
                          "samples); omit --mask")
    if acq.image is not None:
        volfs, scale = normalise_volume(_slices_last(acq.image), source=acq.path)
        if sr:
            return AcquisitionInputs(acq, None, None, None, volfs, scale, "")
        m, note = mask_for(volfs.shape[:2])
        zf, k = undersample_volume(volfs, m)
        return AcquisitionInputs(acq, zf, k, m, volfs, scale, note)
    if sr:
        raise ConfigError(f"--input {acq.path}: complex k-space ({acq.format}); a "
                          "super-resolution checkpoint takes a magnitude image (NIfTI, DICOM or "
                          "kdmri HDF5) and would drop the phase")
    kspace = acq.kspace.astype(np.complex128)
    s, h, w = kspace.shape
    if acq.mask is None:
        m_u, note = mask_for((h, w))
        m_c = to_centred(m_u)
        reference = _slices_last(np.abs(ifft2c(kspace)))
    else:
        m_c, note, reference = acq.mask, f"the measured samples of {acq.path.name}", None
        m_u = to_unshifted(m_c)
    measured = kspace * m_c
    zf_c = ifft2c(measured)
    mag = np.abs(zf_c)
    scale = float(mag.max())
    if not scale > 0:
        raise DataError(f"{acq.path}: the measured k-space is zero everywhere; expected signal")
    phase = np.exp(1j * np.angle(ifft2c(measured * centre_band(m_c, acq))))
    z = zf_c / phase / scale  # demodulated, nearly real, in [0, 1]
    return AcquisitionInputs(acq, _slices_last(z.real).astype(np.float32),
                             _slices_last(fft2(z) * m_u).astype(np.complex64), m_u.astype(np.float32),
                             None if reference is None else reference / scale, scale, note,
                             complex_data=(phase, measured, m_c, _slices_last(mag / scale)))


def centre_band(mask: np.ndarray, acq: Acquisition) -> np.ndarray:
    """``(W,)`` 0/1: the contiguous run of fully measured columns around the centre column
    ``W // 2`` of a centred mask (the low-resolution band the phase is estimated from)."""
    full = np.all(np.asarray(mask) > 0, axis=0)
    c = full.size // 2
    if not full[c]:
        raise DataError(f"{acq.path}: the k-space centre column {c} is not measured; expected a "
                        "fully sampled centre band (needed to estimate the image phase)")
    lo, hi = c, c
    while lo > 0 and full[lo - 1]:
        lo -= 1
    while hi < full.size - 1 and full[hi + 1]:
        hi += 1
    band = np.zeros(full.size)
    band[lo:hi + 1] = 1
    return band
