"""Reading downloads: folders, NIfTI headers and voxels, and the :class:`SourceVolume`
record every converter returns (one output volume, found but not yet loaded)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdmri.errors import DataError

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass
class SourceVolume:
    """One output volume as found in a download, before it is loaded.

    Attributes:
        name: output file stem (``patient001_frame01``); unique within a dataset.
        subject: the unit of the split (patient, subject, scan); one subject's volumes always
            land in the same split.
        sources: the files read to build it (first one is named in error messages).
        shape: native ``(H, W, slices)`` read from the header, before fitting.
        load: returns the native ``(H, W, slices)`` real array; raises :class:`DataError`.
        official_split: ``"train"`` / ``"validation"`` from the download's own layout, or None.
        attrs: extra plain metadata stored in the HDF5 file and the manifest.
    """

    name: str
    subject: str
    sources: tuple[Path, ...]
    shape: tuple[int, int, int]
    load: Callable[[], np.ndarray]
    official_split: str | None = None
    attrs: dict[str, object] = field(default_factory=dict)




def strip_nifti_suffix(name: str) -> str | None:
    """``'T1.nii.gz' -> 'T1'``; ``None`` when ``name`` is not a NIfTI file name."""
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def check_link(path: Path) -> None:
    """:class:`DataError` naming ``path`` when it is a symbolic link whose target is missing
    or that loops (such a file would otherwise be silently left out of the conversion)."""
    if not path.is_symlink():
        return
    try:
        os.stat(path)
    except OSError as exc:
        why = ("loops (the chain of links leads back to itself)" if exc.errno == errno.ELOOP
               else f"points to {os.readlink(path)}, which does not exist ({exc.strerror})")
        raise DataError(f"{path}: broken symbolic link: it {why}; expected a readable file of "
                        "the download: fix the link or remove it") from exc


def visible_files(folder: Path) -> list[Path]:
    """Sorted non-hidden files directly inside ``folder``; :class:`DataError` for a broken link."""
    found = []
    for path in sorted(folder.iterdir()):
        if not path.name.startswith("."):
            check_link(path)
            if path.is_file():
                found.append(path)
    return found


def source_files(root: Path) -> list[Path]:
    """Sorted non-hidden files below ``root`` (any depth, none inside a hidden folder, links
    followed as in :func:`walk_dirs`); :class:`DataError` for a broken or looping link."""
    return sorted(p for folder in walk_dirs(root) for p in visible_files(folder))


def walk_dirs(root: Path) -> list[Path]:
    """``root`` and every non-hidden folder below it, sorted (deterministic order). Links to
    folders are followed (a folder of links to selected subjects is a valid download);
    :class:`DataError` for a broken link, or a link that loops back to a folder above it."""
    found = []
    for current, dirs, files in os.walk(root, followlinks=True):
        here = Path(current)
        for name in files:  # a broken or looping link to a folder is listed among the files
            if not name.startswith("."):
                check_link(here / name)
        rel = here.relative_to(root).parts
        chain = {(root.joinpath(*rel[:i])).resolve() for i in range(len(rel) + 1)}
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in dirs:
            if (here / name).is_symlink() and (here / name).resolve() in chain:
                raise DataError(f"{here / name}: broken symbolic link: it loops (it points to "
                                f"{os.readlink(here / name)}, a folder above it); expected a "
                                "folder of the download: fix the link or remove it")
        found.append(here)
    return sorted(found)


def check_source_folder(src: Path | str) -> Path:
    """The source folder as a Path; :class:`DataError` if it is missing, a file or empty."""
    src = Path(src).expanduser()
    if not src.exists():
        raise DataError(f"{src}: source folder not found (expected the unpacked download)")
    if not src.is_dir():
        raise DataError(f"{src}: expected a folder (the unpacked download), got a file")
    if not any(p for p in src.iterdir() if not p.name.startswith(".")):
        raise DataError(f"{src}: source folder is empty (expected the unpacked download)")
    return src


def nifti_header_shape(path: Path) -> tuple[int, ...]:
    """Array shape from a NIfTI header; :class:`DataError` if the file is not readable."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        return tuple(int(n) for n in img.shape)
    except Exception as exc:  # nibabel raises many kinds on corrupt input
        raise DataError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc}); "
                        "it may be truncated or corrupt: download it again") from exc


def load_nifti(path: Path) -> np.ndarray:
    """Voxel array (float64, scaling applied) of a NIfTI file; :class:`DataError` on failure."""
    import nibabel as nib

    try:
        data = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float64))
    except Exception as exc:
        raise DataError(f"{path}: could not read the image data ({type(exc).__name__}: {exc}); "
                        "the file may be truncated or corrupt: download it again") from exc
    return data


def nifti_3d(path: Path, what: str = "volume"):
    """``(shape, load)`` of a 3-D NIfTI image (a trailing singleton 4th axis is dropped):
    the shape from the header, checked to be ``(X, Y, slices)``, and a function that reads
    the voxels lazily. :class:`DataError` naming ``path`` otherwise."""
    shape = nifti_header_shape(path)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(f"{path}: expected a 3-D {what} (X, Y, slices), got shape {shape}")

    def load(path: Path = path) -> np.ndarray:
        data = load_nifti(path)
        return data.reshape(data.shape[:3])

    return shape, load


def check_finite(array: np.ndarray, source: Path, what: str = "image") -> None:
    """:class:`DataError` naming ``source`` and the first bad slice if ``array`` has NaN/inf.

    ``array`` is ``(H, W, slices)``.
    """
    bad = ~np.isfinite(array)
    if bad.any():
        per_slice = bad.reshape(-1, array.shape[-1]).sum(axis=0)
        first = int(np.flatnonzero(per_slice)[0])
        raise DataError(f"{source}: {what} contains {int(bad.sum())} NaN or infinite value(s) "
                        f"(first in slice {first}); expected finite intensities")

