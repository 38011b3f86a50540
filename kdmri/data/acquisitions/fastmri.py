"""fastMRI single-coil HDF5 files as downloaded (facebookresearch/fastMRI, ``fastmri/data``).

Train / validation (fully sampled)::

    kspace              complex64 (slices, 640, W)  centred along both axes, W ~ 368-372
    reconstruction_esc  float32   (slices, 320, 320) |ifft2c(kspace)| centre-cropped
    ismrmrd_header      bytes     XML; encoding/reconSpace/matrixSize = the 320 x 320 crop
    attrs               acquisition, max, norm, patient_id

Test / challenge (undersampled)::

    kspace              complex64 (slices, 640, W)  already masked
    mask                (W,) bool or float          the measured columns (centred, as kspace)
    ismrmrd_header      bytes
    attrs               acceleration, num_low_frequency, acquisition, patient_id

A fully sampled file is undersampled retrospectively and ``|ifft2c(kspace)|`` cropped is the
reference; an undersampled one is reconstructed from its measured columns, without a
reference. The output crop is the header's ``reconSpace`` matrix (320 x 320 for the knee
data), clamped to the image size; without a readable header, 320 x 320.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np

from kdmri.data.acquisitions.registry import Acquisition, Reader, hdf5_names, is_hdf5, register_reader
from kdmri.errors import DataError

KEYS = ("kspace", "ismrmrd_header", "reconstruction_esc", "reconstruction_rss")
ATTRS = ("acquisition", "patient_id", "acceleration", "num_low_frequency", "max", "norm")
CROP = (320, 320)  # fastMRI's reconstruction size when the header does not say
_NS = {"i": "http://www.ismrm.org/ISMRMRD"}


def sniff(path: Path) -> bool:
    if not is_hdf5(path):
        return False
    names = hdf5_names(path)
    return names is not None and (any(k in names[0] for k in KEYS) or "acquisition" in names[1])


def recon_size(header: bytes | str | None) -> tuple[int, int] | None:
    """``encoding/reconSpace/matrixSize`` ``(x, y)`` of an ISMRMRD XML header, if present."""
    if header is None:
        return None
    try:
        root = ET.fromstring(header)
        size = root.find("i:encoding/i:reconSpace/i:matrixSize", _NS)
        if size is None:
            return None
        return int(size.find("i:x", _NS).text), int(size.find("i:y", _NS).text)
    except (ET.ParseError, AttributeError, TypeError, ValueError):
        return None


def clamp_crop(crop: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int]:
    """The crop, never larger than the image (fastMRI shrinks it likewise for small images)."""
    return min(crop[0], shape[0]), min(crop[1], shape[1])


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def read(path: Path) -> Acquisition:
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc}); it may be truncated") from exc
    with fh:
        if "kspace" not in fh:
            raise DataError(f"{path}: missing key 'kspace' (keys present: {sorted(fh.keys())}); "
                            "expected a fastMRI single-coil file")
        ds = fh["kspace"]
        if ds.ndim == 4:
            raise DataError(f"{path}: multi-coil 'kspace' {ds.shape} (slices, coils, H, W); kdmri "
                            "reconstructs single-coil data only (expected (slices, H, W))")
        if ds.ndim != 3 or not np.issubdtype(ds.dtype, np.complexfloating):
            raise DataError(f"{path}: 'kspace' is {ds.dtype} {ds.shape}; expected complex64 "
                            "(slices, H, W)")
        if ds.shape[0] == 0 or min(ds.shape[1:]) < 7:
            raise DataError(f"{path}: 'kspace' {ds.shape}; expected at least one slice of 7 x 7")
        try:
            kspace = np.asarray(ds[()], dtype=np.complex64)
            mask = np.asarray(fh["mask"][()]) if "mask" in fh else None
            header = fh["ismrmrd_header"][()] if "ismrmrd_header" in fh else None
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: could not read its datasets ({exc}); the file may be "
                            "truncated") from exc
        attrs = {k: _plain(fh.attrs[k]) for k in ATTRS if k in fh.attrs}
    if not np.all(np.isfinite(kspace)):
        raise DataError(f"{path} ('kspace'): contains NaN or infinite values")
    _, height, width = kspace.shape
    crop = clamp_crop(recon_size(header) or CROP, (height, width))
    if mask is None:
        return Acquisition(path, "fastmri", kspace=kspace, crop=crop, attrs=attrs,
                           note="fully sampled fastMRI file, undersampled retrospectively; "
                                "reference |ifft2c(kspace)| cropped (as reconstruction_esc)")
    if mask.shape != (width,) or not np.all((mask == 0) | (mask == 1)):
        raise DataError(f"{path}: 'mask' is {mask.dtype} {mask.shape}; expected ({width},) of 0/1 "
                        "(one per k-space column)")
    if not mask.any():
        raise DataError(f"{path}: 'mask' samples no column; expected the measured columns")
    cols = mask.astype(np.float32)
    acc = attrs.get("acceleration", f"{width / cols.sum():.1f} (measured)")
    return Acquisition(path, "fastmri", kspace=kspace * cols, mask=np.broadcast_to(cols, (height, width)),
                       crop=crop, attrs=attrs,
                       note=f"undersampled fastMRI file: reconstructed from its {int(cols.sum())} "
                            f"of {width} measured columns (acceleration {acc}); no reference, "
                            "so no metrics")


register_reader(Reader("fastmri", "fastMRI single-coil HDF5", sniff, read))
