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

from pathlib import Path

from kdmri.errors import ConfigError, DataError
from kdmri.datasets.convert import (
    PrepareOptions,
    SourceVolume,
    nifti_3d,
    strip_nifti_suffix,
    visible_files,
    walk_dirs,
)

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
