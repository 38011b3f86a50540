"""Real acquisitions for ``python -m kdmri reconstruct``: one registry of format readers.

Each format is recognised by its **content**, never by a flag (docs/ACQUISITIONS.md):

==========  ==========================================================================
``nifti``   NIfTI-1/2 header magic (``n+1`` / ``ni1`` at byte 344, ``n+2`` at byte 4),
            gzip-compressed or not (read by :mod:`kdmri.tools.reconstruct` itself)
``fastmri`` HDF5 with fastMRI's keys (``kspace``, ``ismrmrd_header``,
            ``reconstruction_esc`` / ``_rss``) or its ``acquisition`` attribute
``ismrmrd`` HDF5 with an ISMRMRD ``dataset`` group (``dataset/xml``, ``dataset/data``)
``kdmri``   any other HDF5 file: kdmri's own layout (read by the reconstruct tool)
``dicom``   a file with ``DICM`` at byte 128, or a folder of such files
==========  ==========================================================================

A reader returns an :class:`Acquisition`: either complex **k-space** ``(slices, H, W)`` in
fastMRI's centred layout (rows = readout, columns = phase encode) with the mask of the
measured columns, or a real **magnitude image** ``(slices, H, W)``; plus metadata.
:mod:`kdmri.data.acquisitions.inputs` turns it into the network's inputs.
"""

from __future__ import annotations

from pathlib import Path

from kdmri.data.acquisitions import dicom, fastmri, ismrmrd_raw  # noqa: F401  (register)
from kdmri.data.acquisitions.registry import (
    NIFTI_EXTS,
    READERS,
    Acquisition,
    Reader,
    head_bytes,
    is_hdf5,
    register_reader,
)
from kdmri.errors import DataError

__all__ = ["Acquisition", "Reader", "detect_format", "read_acquisition", "register_reader"]

def _sniff_nifti(path: Path) -> bool:
    if not path.is_file():
        return False
    head = head_bytes(path)
    if head[344:348] in (b"n+1\0", b"ni1\0") or head[4:8] in (b"n+2\0", b"ni2\0"):
        return True
    return path.name.lower().endswith(NIFTI_EXTS) and not is_hdf5(path)  # corrupt: reader says


def _sniff_kdmri(path: Path) -> bool:
    # the last HDF5 reader: any file with the HDF5 signature (a truncated one too: its reader
    # says why)
    return is_hdf5(path)


register_reader(Reader("nifti", "NIfTI volume", _sniff_nifti))


def detect_format(path: Path | str, param: str = "--input") -> str:
    """The registry name of the format of ``path``, from its content.

    Raises DataError (one line) for a missing path or content no reader recognises.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{param} {path}: file not found")
    for reader in READERS.values():
        if reader.sniff(path):
            return reader.name
    raise DataError(f"{param} {path}: not a recognised input; expected a NIfTI volume "
                    "(.nii / .nii.gz), an HDF5 file (kdmri layout, fastMRI or ISMRMRD raw data) "
                    "or DICOM (a .dcm file or a folder of them)")


def read_acquisition(path: Path | str, fmt: str | None = None) -> Acquisition:
    """Read ``path`` with the reader of ``fmt`` (default: :func:`detect_format`)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    reader = READERS.get(fmt)
    if reader is None or reader.read is None:
        raise DataError(f"{path}: format {fmt!r} has no acquisition reader; expected one of "
                        f"{[n for n, r in READERS.items() if r.read is not None]}")
    return reader.read(path)


register_reader(Reader("kdmri", "kdmri HDF5 volume", _sniff_kdmri))
