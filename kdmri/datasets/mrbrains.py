"""MRBrainS13 (3T multi-sequence brain MRI) -> ``mrbrain``: one contrast per subject.

On-disk layout of the MRBrainS13 NIfTI release (one folder per subject)::

    TrainingData/1/T1.nii          T1-weighted, registered to the FLAIR  (240, 240, 48)
    TrainingData/1/T1_IR.nii       T1-weighted inversion recovery        (240, 240, 48)
    TrainingData/1/T2_FLAIR.nii    T2 FLAIR                              (240, 240, 48)
    TrainingData/1/T1_1mm.nii      3-D T1 at 1 mm (other grid; not used)
    TrainingData/1/LabelsForTraining.nii, LabelsForTesting.nii   (not used)
    TestData/1/...                 the same images without labels

Voxels are 0.958 x 0.958 x 3.0 mm; the 48 axial slices are ``data[:, :, z]`` (stored
voxel order, no reorientation). ``--contrast`` picks ``T1`` (default), ``T1_IR`` or
``T2_FLAIR`` (``FLAIR`` and ``IR`` are accepted as aliases); ``.nii.gz`` files work too.
The output volume is ``<subject>_<contrast>.h5`` where ``<subject>`` is the subject folder's
path below ``--src`` joined by ``_`` (``TrainingData_1``), so TrainingData/1 and
TestData/1 never collide. Split unit: the subject. Official split: ``TrainingData`` ->
train, ``TestData`` -> validation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from kdmri.datasets.convert import PrepareOptions
from kdmri.datasets.examples import save_nifti, template_1mm, template_slices
from kdmri.datasets.registry import DatasetSpec, register_dataset
from kdmri.datasets.rules import off_size
from kdmri.datasets.sources import (
    SourceVolume,
    nifti_3d,
    strip_nifti_suffix,
    visible_files,
    walk_dirs,
)
from kdmri.errors import ConfigError, DataError

DATASET = "mrbrain"
TITLE = "MRBrainS13 brain MRI"
CONTRASTS = ("T1", "T1_IR", "T2_FLAIR")
DEFAULT_CONTRAST = "T1"
ALIASES = {"t1": "T1", "t1_ir": "T1_IR", "ir": "T1_IR", "t1ir": "T1_IR", "t2_flair": "T2_FLAIR",
           "flair": "T2_FLAIR", "t2flair": "T2_FLAIR"}
KNOWN_STEMS = ("T1", "T1_1mm", "T1_IR", "T2_FLAIR", "LabelsForTraining", "LabelsForTesting")
OFFICIAL = {"trainingdata": "train", "testdata": "validation"}
METAIMAGE_SUFFIXES = (".mhd", ".raw", ".zraw")


def resolve_contrast(contrast: str | None) -> str:
    """Canonical MRBrainS13 contrast name (``'flair' -> 'T2_FLAIR'``); default ``T1``."""
    if contrast is None:
        return DEFAULT_CONTRAST
    name = ALIASES.get(contrast.strip().lower())
    if name is None:
        raise ConfigError(f"--contrast {contrast!r}: expected one of {list(CONTRASTS)} "
                          "(or FLAIR / IR)")
    return name


def _is_subject_dir(folder: Path) -> bool:
    for path in visible_files(folder):
        stem = strip_nifti_suffix(path.name)
        if stem is None and path.suffix in METAIMAGE_SUFFIXES:
            stem = path.stem
        if stem in KNOWN_STEMS:
            return True
    return False


def _subject_id(folder: Path, src: Path) -> str:
    rel = folder.relative_to(src).parts
    return "_".join(rel) if rel else src.name


def _subject_volume(folder: Path, src: Path, contrast: str) -> SourceVolume:
    image = None
    metaimage = False
    for path in visible_files(folder):
        stem = strip_nifti_suffix(path.name)
        if stem is None:
            metaimage = metaimage or (path.suffix in METAIMAGE_SUFFIXES and path.stem == contrast)
            continue
        if stem not in KNOWN_STEMS:
            raise DataError(f"{path}: unexpected file name in MRBrainS subject folder {folder}; "
                            f"expected {', '.join(s + '.nii' for s in KNOWN_STEMS)} (or .nii.gz)")
        if stem == contrast:
            image = path
    if image is None:
        hint = (" (found MetaImage .mhd files: convert them to NIfTI, e.g. with SimpleITK, or "
                "use the NIfTI release)") if metaimage else ""
        raise DataError(f"{folder}: missing {contrast}.nii (or {contrast}.nii.gz), the requested "
                        f"--contrast{hint}")
    shape, load = nifti_3d(image)
    subject = _subject_id(folder, src)
    official = OFFICIAL.get(folder.parent.name.lower())
    return SourceVolume(name=f"{subject}_{contrast}", subject=subject, sources=(image,),
                        shape=shape, load=load, official_split=official,
                        attrs={"contrast": contrast})


def discover(src: Path, options: PrepareOptions) -> list[SourceVolume]:
    """The chosen contrast of every MRBrainS13 subject folder below ``src``."""
    contrast = resolve_contrast(options.contrast)
    subjects = [d for d in walk_dirs(src) if _is_subject_dir(d)]
    if not subjects:
        raise DataError(f"{src}: no MRBrainS subject folders found (expected e.g. "
                        "TrainingData/1/ holding T1.nii, T1_IR.nii and T2_FLAIR.nii)")
    return [_subject_volume(folder, src, contrast) for folder in subjects]


def resolve_options(options: PrepareOptions) -> PrepareOptions:
    """``options`` with the canonical contrast (default ``T1``)."""
    return replace(options, contrast=resolve_contrast(options.contrast))


def check_layout(shape: tuple[int, ...], size: tuple[int, int]) -> str | None:
    """MRBrainS13 images are 240 x 240 x 48: an in-plane size far from the target is not it."""
    if off_size(shape, size):
        return (f"in-plane size {shape[0]} x {shape[1]} is not about {size[0]} x {size[1]} "
                "(MRBrainS13 images are 240 x 240 x 48)")
    return None


def write_example(root: Path, n_subjects: int, n_slices: int) -> None:
    """``TrainingData/<n>/{T1,T1_IR,T2_FLAIR}.nii`` ..., the last subject in ``TestData/``;
    240 x 240 x slices, float32."""
    template = template_1mm()
    for k in range(n_subjects):
        split = "TestData" if k == n_subjects - 1 else "TrainingData"
        folder = root / split / str(k + 1)
        t1 = template_slices(template, k, n_slices, "axial", (240, 240))
        head = t1 > 0.05
        contrasts = {"T1": t1, "T1_IR": t1 ** 2, "T2_FLAIR": np.where(head, 1.0 - 0.8 * t1, 0.0)}
        for name, vol in contrasts.items():
            save_nifti(folder / f"{name}.nii", vol, (0.958, 0.958, 3.0), np.float32)


SPEC = register_dataset(DatasetSpec(
    name=DATASET, shape=(240, 240), label="Brain", title=TITLE, discover=discover,
    write_example=write_example, official_split={"TrainingData": "train", "TestData": "validation"},
    check_layout=check_layout, resolve_options=resolve_options, module=__name__,
    notes="one contrast (--contrast, default T1) per subject; 48 axial slices of 240 x 240.",
    approx_slices=(240, 720, "MRBrainS13: 5 training / 15 test subjects x 48 slices"),
))
