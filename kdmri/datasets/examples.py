"""Tiny stand-ins for the real downloads, in each dataset's on-disk format (no download).

Each dataset module holds its own writer (its spec's ``write_example``); this module holds
the pieces they share and :func:`make_example_source`, which writes a folder with the
folder layout, file names, file formats, keys, dtypes and axis order that
:mod:`kdmri.datasets` reads from the real download of a dataset (``cardiac``: ACDC,
``mrbrain``: MRBrainS13, ``knee``: fastMRI single-coil, ``calgary``: CC-359), holding a
few slices per subject. It lets a reader (notebook
``00_data``) or a test run ``python -m kdmri prepare`` end to end before downloading
anything.

The pixels are **not** the dataset's: every file holds slices of the MNI152 T1 template
that ships with nilearn (the demo's source, :func:`kdmri.data.demo.template_path`) at 1 mm,
zero-padded to the dataset's native size, a few millimetres apart for each subject. So
the converted images look like a brain whatever the dataset; only the format is real.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdmri.data.fit_size import fit_to_size
from kdmri.datasets.registry import dataset_names, get_dataset
from kdmri.errors import ConfigError


def template_1mm() -> np.ndarray:
    """The 1 mm MNI152 template (197, 233, 189) scaled to [0, 1]."""
    import nibabel as nib

    from kdmri.data.demo import template_path

    vol = np.asarray(nib.load(str(template_path())).dataobj, dtype=np.float32)
    return vol / vol.max()


def template_slices(template: np.ndarray, subject: int, n_slices: int, view: str,
            size: tuple[int, int]) -> np.ndarray:
    """``(H, W, n_slices)``: ``n_slices`` slices 3 mm apart, shifted by 5 mm per subject, each
    centre-cropped / zero-padded to ``size`` (:func:`kdmri.data.fit_size.fit_to_size`)."""
    axis = {"axial": 2, "sagittal": 0}[view]
    centre = template.shape[axis] // 2 - 10 + 5 * subject
    idx = centre + 3 * (np.arange(n_slices) - n_slices // 2)
    out = [fit_to_size(np.rot90(np.take(template, int(i), axis=axis)), size) for i in idx]
    return np.stack(out, axis=-1)


def save_nifti(path: Path, data: np.ndarray, zooms: tuple[float, float, float],
                dtype=np.int16) -> Path:
    import nibabel as nib

    scaled = np.round(data * 1000) if np.issubdtype(dtype, np.integer) else data
    img = nib.Nifti1Image(scaled.astype(dtype), np.diag([*zooms, 1.0]))
    img.header.set_zooms(zooms)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def make_example_source(dataset: str, folder: Path | str, n_subjects: int = 3,
                        n_slices: int = 4) -> Path:
    """Write a tiny stand-in for ``dataset``'s download into ``folder``; returns ``folder``
    (the ``--src`` of ``python -m kdmri prepare``).

    ``n_subjects`` subjects, ``n_slices`` slices each; the last subject in the download's
    official validation/test folder where the dataset has one. The layout is described by
    each dataset module's ``write_example``.

    Raises ConfigError for an unknown dataset or fewer than 2 subjects or 1 slice.
    """
    writers = [n for n in dataset_names() if get_dataset(n).write_example is not None]
    if dataset not in writers:
        raise ConfigError(f"dataset {dataset!r}: expected one of {writers}")
    if n_subjects < 2 or n_slices < 1:
        raise ConfigError(f"n_subjects={n_subjects}, n_slices={n_slices}: expected at least 2 "
                          "subjects (a train/validation split) and 1 slice")
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    get_dataset(dataset).write_example(root, n_subjects, n_slices)
    return root
