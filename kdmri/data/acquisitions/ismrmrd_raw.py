"""ISMRMRD raw data (HDF5 ``dataset/xml`` + ``dataset/data``), Cartesian 2-D, single-coil.

Read with the ``ismrmrd`` package (optional extra ``formats``). Each readout is placed in a
k-space ``(slices, encodedSpace.x, encodedSpace.y)`` at row ``kspace_encode_step_1 +
encodedSpace.y // 2 - encodingLimits.kspace_encoding_step_1.center`` (fastMRI's
``padding_left``; the centre line lands at ``y // 2``) and slice ``idx.slice``, its
``center_sample`` at ``x // 2``; lines measured more than once are averaged. Noise,
navigator, phase-correction, dummy and feedback readouts are skipped, as are repetitions,
contrasts, phases and sets other than 0 (counted in the note). Readout oversampling is
removed as the ISMRMRD and fastMRI examples do: inverse FFT along the readout, keep the
central ``reconSpace.x`` samples, FFT back. The result is in fastMRI's layout (rows =
readout, columns = phase encode, centred) and is cropped to ``reconSpace`` ``(x, y)`` at
the end. If every line within the encoding limits was measured the data are fully
sampled (undersampled retrospectively, with a reference); otherwise the measured lines
are the mask. Multi-coil data, 3-D encoding and non-Cartesian trajectories are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from kdmri.data.acquisitions.fastmri import clamp_crop
from kdmri.data.acquisitions.registry import (
    Acquisition,
    Reader,
    hdf5_names,
    is_hdf5,
    needs_package,
    register_reader,
)
from kdmri.errors import DataError

SKIP_FLAGS = ("ACQ_IS_NOISE_MEASUREMENT", "ACQ_IS_NAVIGATION_DATA", "ACQ_IS_PHASECORR_DATA",
              "ACQ_IS_DUMMYSCAN_DATA", "ACQ_IS_RTFEEDBACK_DATA", "ACQ_IS_HPFEEDBACK_DATA")
OTHER_COUNTERS = ("repetition", "contrast", "phase", "set")


def sniff(path: Path) -> bool:
    if not is_hdf5(path):
        return False
    names = hdf5_names(path)
    return names is not None and bool({"dataset/xml", "dataset/data"} & names[0])


def centred_fft1(x: np.ndarray, axis: int, inverse: bool = False) -> np.ndarray:
    """Orthonormal centred 1-D (inverse) DFT along ``axis`` (DC at ``n // 2``)."""
    fn = np.fft.ifft if inverse else np.fft.fft
    return np.fft.fftshift(fn(np.fft.ifftshift(x, axes=axis), axis=axis, norm="ortho"), axes=axis)


def remove_oversampling(kspace: np.ndarray, n: int, axis: int = 1) -> np.ndarray:
    """Keep the central ``n`` image samples along ``axis`` (the readout) of centred k-space."""
    size = kspace.shape[axis]
    if size <= n:
        return kspace
    start = (size - n) // 2
    image = np.take(centred_fft1(kspace, axis, inverse=True), np.arange(start, start + n), axis=axis)
    return centred_fft1(image, axis)


def _header(dset, path: Path):
    import ismrmrd.xsd

    try:
        xml = dset.read_xml_header()
        header = ismrmrd.xsd.CreateFromDocument(xml)
    except Exception as exc:  # noqa: BLE001  (xsdata raises several kinds)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: 'dataset/xml' is not a valid ISMRMRD header ({reason})") from exc
    if len(header.encoding) != 1:
        raise DataError(f"{path}: {len(header.encoding)} encodings in the header; expected one")
    enc = header.encoding[0]
    traj = getattr(enc.trajectory, "value", enc.trajectory)
    if traj != "cartesian":
        raise DataError(f"{path}: trajectory {traj!r}; kdmri reconstructs Cartesian data only")
    e, r = enc.encodedSpace.matrixSize, enc.reconSpace.matrixSize
    if (e.z or 1) > 1:
        raise DataError(f"{path}: 3-D encoding (encodedSpace z = {e.z}); expected 2-D slices")
    step1 = enc.encodingLimits.kspace_encoding_step_1 if enc.encodingLimits else None
    centre = step1.center if step1 is not None and step1.center is not None else e.y // 2
    last = step1.maximum if step1 is not None and step1.maximum is not None else e.y - 1
    return (int(e.x), int(e.y)), (int(r.x), int(r.y)), e.y // 2 - int(centre), int(last)


def read(path: Path) -> Acquisition:
    try:
        import ismrmrd
    except ImportError as exc:
        raise needs_package("ismrmrd", "ISMRMRD raw data") from exc
    try:
        dset = ismrmrd.Dataset(str(path), "dataset", mode="r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc}); it may be truncated") from exc
    with dset:
        names = hdf5_names(path) or (set(), set())
        missing = [k for k in ("dataset/xml", "dataset/data") if k not in names[0]]
        if missing:
            raise DataError(f"{path}: missing {missing}; expected ISMRMRD raw data with "
                            "'dataset/xml' and 'dataset/data'")
        (enx, eny), (rnx, rny), pad, last = _header(dset, path)
        skip = [getattr(ismrmrd, f) for f in SKIP_FLAGS]
        lines: dict[tuple[int, int], list[np.ndarray]] = {}
        other = 0
        try:
            n = dset.number_of_acquisitions()
            for i in tqdm(range(n), desc=f"reading {path.name}", leave=False, disable=n < 2000):
                acq = dset.read_acquisition(i)
                if any(acq.is_flag_set(f) for f in skip):
                    continue
                if any(getattr(acq.idx, c) for c in OTHER_COUNTERS):
                    other += 1
                    continue
                if acq.active_channels != 1:
                    raise DataError(f"{path}: acquisition {i} has {acq.active_channels} receive "
                                    "channels; kdmri reconstructs single-coil data only")
                y = int(acq.idx.kspace_encode_step_1) + pad
                x0 = enx // 2 - int(acq.center_sample)
                ns = int(acq.number_of_samples)
                if not (0 <= y < eny and 0 <= x0 and x0 + ns <= enx):
                    raise DataError(f"{path}: acquisition {i} (line {acq.idx.kspace_encode_step_1}, "
                                    f"{ns} samples, centre {acq.center_sample}) does not fit the "
                                    f"encoded matrix {enx} x {eny}")
                line = np.zeros(enx, np.complex64)
                line[x0:x0 + ns] = acq.data[0]
                lines.setdefault((int(acq.idx.slice), y), []).append(line)
        except DataError:
            raise
        except (OSError, KeyError, ValueError, IndexError) as exc:
            raise DataError(f"{path}: could not read the acquisitions ({exc}); the file may be "
                            "truncated") from exc
    if not lines:
        raise DataError(f"{path}: no imaging readouts in 'dataset/data'")
    n_slices = 1 + max(s for s, _ in lines)
    kspace = np.zeros((n_slices, enx, eny), np.complex64)
    sampled = np.zeros((n_slices, eny), bool)
    for (s, y), reads in lines.items():
        kspace[s, :, y] = np.mean(reads, axis=0)
        sampled[s, y] = True
    if not np.all(sampled == sampled[0]):
        raise DataError(f"{path}: the slices sample different phase-encode lines; expected one "
                        "pattern for the volume")
    if not np.all(np.isfinite(kspace)):
        raise DataError(f"{path}: the readouts contain NaN or infinite values")
    kspace = remove_oversampling(kspace, rnx).astype(np.complex64)
    crop = clamp_crop((rnx, rny), kspace.shape[1:])
    attrs = {"encoded_size": f"{enx} x {eny}", "recon_size": f"{rnx} x {rny}"}
    extra = f"; {other} readouts of other repetitions/contrasts/phases/sets skipped" if other else ""
    limits = np.zeros(eny, bool)
    limits[max(pad, 0):pad + last + 1] = True
    if np.all(sampled[0][limits]):
        return Acquisition(path, "ismrmrd", kspace=kspace, crop=crop, attrs=attrs,
                           note="fully sampled ISMRMRD data, undersampled retrospectively; "
                                f"reference |ifft2c(kspace)| cropped{extra}")
    cols = sampled[0].astype(np.float32)
    return Acquisition(path, "ismrmrd", kspace=kspace, mask=np.broadcast_to(cols, kspace.shape[1:]),
                       crop=crop, attrs=attrs,
                       note=f"undersampled ISMRMRD data: reconstructed from its {int(cols.sum())} "
                            f"of {int(limits.sum())} lines; no reference, so no metrics{extra}")


register_reader(Reader("ismrmrd", "ISMRMRD raw data (HDF5)", sniff, read))
