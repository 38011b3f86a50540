"""The registry of acquisition readers and the structure they return (:class:`Acquisition`)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from kdmri.errors import DataError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NIFTI_EXTS = (".nii", ".nii.gz")
HDF5_EXTS = (".h5", ".hdf5")


@dataclass
class Acquisition:
    """What a reader found in a file, in one layout.

    Attributes:
        path: the file or folder read.
        format: the registry name (``fastmri``, ``ismrmrd``, ``dicom``).
        kspace: complex64 ``(S, H, W)``, **centred** (DC at ``(H // 2, W // 2)``, as fastMRI
            stores it), zero where not measured; ``None`` for image formats.
        image: float32 magnitude ``(S, H, W)`` for image formats (DICOM), else ``None``.
        mask: float32 ``(H, W)`` of 0/1, **centred**, the samples actually measured;
            ``None`` when the data are fully sampled (a retrospective mask is applied).
        crop: the output size ``(h, w)``: the magnitude image is centre-cropped to it (fastMRI's
            ``center_crop``); ``None`` keeps the full size.
        attrs: metadata copied to the output file's attributes (strings and numbers).
        note: one line for the report, e.g. how the samples were obtained.
    """

    path: Path
    format: str
    kspace: np.ndarray | None = None
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    crop: tuple[int, int] | None = None
    attrs: dict = field(default_factory=dict)
    note: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        data = self.kspace if self.kspace is not None else self.image
        return tuple(int(n) for n in data.shape)


@dataclass(frozen=True)
class Reader:
    """A format: ``sniff(path) -> bool`` on the content; ``read(path) -> Acquisition``
    (``None``: read by the reconstruct tool's own code, NIfTI and kdmri HDF5)."""

    name: str
    title: str
    sniff: Callable[[Path], bool]
    read: Callable[[Path], Acquisition] | None = None


READERS: dict[str, Reader] = {}


def register_reader(reader: Reader) -> Reader:
    """Add a format; formats are tried in registration order (kdmri HDF5 last of the HDF5s)."""
    if reader.name in READERS and READERS[reader.name] != reader:
        raise DataError(f"input format {reader.name!r} is already registered")
    READERS[reader.name] = reader
    return reader


def reader_names() -> list[str]:
    return list(READERS)


def head_bytes(path: Path, n: int = 352) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(n)
    if head[:2] == b"\x1f\x8b":  # gzip: the NIfTI header is inside
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read(n)
        except (OSError, EOFError, zlib.error):  # not gzip after all, or corrupt
            return b""
    return head


def is_hdf5(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(8) == HDF5_SIGNATURE


def hdf5_names(path: Path) -> tuple[set[str], set[str]] | None:
    """``(keys, attribute names)`` of an HDF5 file's root, or ``None`` if it cannot be opened."""
    try:
        with h5py.File(path, "r") as fh:
            keys = set(fh.keys())
            if "dataset" in fh and isinstance(fh["dataset"], h5py.Group):
                keys |= {f"dataset/{k}" for k in fh["dataset"].keys()}
            return keys, set(fh.attrs.keys())
    except (OSError, KeyError, ValueError):
        return None


def needs_package(name: str, fmt: str) -> DataError:
    """The one-line error when an optional reader package is missing."""
    return DataError(f"reading {fmt} needs the optional package '{name}' "
                     "(pip install 'kdmri[formats]')")
