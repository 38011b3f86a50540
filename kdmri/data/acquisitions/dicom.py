"""DICOM magnitude series: a ``.dcm`` file or a folder of them (read with ``pydicom``).

A file is DICOM when it has ``DICM`` at byte 128 (the Part 10 preamble); a folder is
DICOM when it holds such files (its other files are an error, not ignored). Every file
must belong to one series (``SeriesInstanceUID``), have the same ``Rows`` x ``Columns``
and be a magnitude image (``ImageType`` without ``P``/``PHASE``, ``R``/``REAL``,
``I``/``IMAGINARY``). A multi-frame file gives its frames in order. Slices are sorted by
their position along the slice normal (``ImagePositionPatient`` projected on the cross
product of ``ImageOrientationPatient``) when every file has both, else by
``InstanceNumber``. Pixel values are scaled by ``RescaleSlope`` / ``RescaleIntercept``.

The images are magnitude images, so the k-space is **retrospective**: the images are
undersampled by kdmri's mask, exactly as a NIfTI input (the report says so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdmri.data.acquisitions.registry import Acquisition, Reader, needs_package, register_reader
from kdmri.errors import DataError

PHASE_TYPES = {"P", "PHASE", "R", "REAL", "I", "IMAGINARY"}


def is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def dicom_files(path: Path) -> list[Path]:
    """The files of a DICOM input (a file, or every visible file of a folder)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


def sniff(path: Path) -> bool:
    if path.is_file():
        return is_dicom_file(path)
    return path.is_dir() and any(is_dicom_file(p) for p in dicom_files(path))


def _position(ds) -> float | None:
    try:
        ori = np.asarray(ds.ImageOrientationPatient, dtype=float)
        pos = np.asarray(ds.ImagePositionPatient, dtype=float)
    except (AttributeError, TypeError, ValueError):
        return None
    if ori.shape != (6,) or pos.shape != (3,):
        return None
    return float(np.dot(np.cross(ori[:3], ori[3:]), pos))


def _frames(ds, path: Path) -> np.ndarray:
    try:
        pixels = np.asarray(ds.pixel_array, dtype=np.float64)
    except Exception as exc:  # noqa: BLE001  (pydicom raises many kinds for bad pixel data)
        raise DataError(f"{path}: cannot decode its pixel data ({type(exc).__name__}: {exc}); "
                        "expected an uncompressed or pydicom-decodable magnitude image") from exc
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.ndim != 3:
        raise DataError(f"{path}: pixel data of shape {pixels.shape}; expected a grey-level image "
                        "(Rows, Columns) or frames (N, Rows, Columns)")
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    return pixels * slope + float(getattr(ds, "RescaleIntercept", 0) or 0)


def read(path: Path) -> Acquisition:
    try:
        import pydicom
    except ImportError as exc:
        raise needs_package("pydicom", "DICOM") from exc
    items, series = [], set()
    for file in dicom_files(path):
        if not is_dicom_file(file):
            raise DataError(f"{file}: not a DICOM file (no 'DICM' at byte 128) in the DICOM "
                            f"folder {path}; expected only .dcm files there")
        try:
            ds = pydicom.dcmread(file)
            kinds = {str(t).upper() for t in getattr(ds, "ImageType", [])}
            frames = _frames(ds, file)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001  (truncated or corrupt files)
            raise DataError(f"{file}: not a readable DICOM file ({type(exc).__name__}: {exc}); "
                            "it may be truncated") from exc
        if kinds & PHASE_TYPES:
            raise DataError(f"{file}: ImageType {sorted(kinds)} is not a magnitude image; kdmri "
                            "reconstructs magnitude images only (the phase would be lost)")
        series.add(str(getattr(ds, "SeriesInstanceUID", "")))
        items.append((_position(ds), int(getattr(ds, "InstanceNumber", 0) or 0), file, frames))
    if len(series) > 1:
        raise DataError(f"{path}: files of {len(series)} series (SeriesInstanceUID); expected one "
                        "series per folder")
    shapes = {it[3].shape[1:] for it in items}
    if len(shapes) > 1:
        raise DataError(f"{path}: images of different sizes {sorted(shapes)}; expected one size")
    by_position = all(it[0] is not None for it in items)
    items.sort(key=lambda it: (it[0], it[1], it[2].name) if by_position else (it[1], it[2].name))
    image = np.concatenate([it[3] for it in items], axis=0).astype(np.float32)
    if min(image.shape[1:]) < 7:
        raise DataError(f"{path}: images of {image.shape[1:]} are too small; expected at least 7x7")
    if not np.all(np.isfinite(image)):
        raise DataError(f"{path}: pixel data contain NaN or infinite values")
    order = "ImagePositionPatient" if by_position else "InstanceNumber"
    return Acquisition(path, "dicom", image=image, attrs={"slice_order": order},
                       note=f"DICOM magnitude images ({len(items)} files, sorted by {order}), "
                            "undersampled retrospectively")


register_reader(Reader("dicom", "DICOM magnitude series", sniff, read))
