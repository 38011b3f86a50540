"""Calgary-Campinas CC-359 (3-D T1 brain MRI) -> ``calgary``: 256 x 256 sagittal slices.

On-disk layout of the CC-359 download::

    Original/CC0001_philips_15_55_M.nii.gz     <id>_<vendor>_<field T>_<age>_<sex>
    Original/CC0002_philips_15_56_M.nii.gz     (vendor: ge / philips / siemens; field 15 / 3)
    ...                                        359 volumes of about (171-180, 256, 256)
    Skull-stripping-masks/..., Silver-standard/...   (not used)

Arrays as nibabel loads them are ``(slices, 256, 256)``: the first voxel axis (sagittal,
170-200 positions) is the slice axis, so slice ``s`` is ``data[s, :, :]`` (stored voxel
order, no reorientation). When ``--src`` holds an ``Original/`` folder only that folder is
read (vendor sub-folders are fine); every other NIfTI there must follow the CC-359 naming.
One file = one subject (``CC0001``). The download has no train/validation split: use the
seeded split.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from kdmri.datasets.convert import PrepareOptions
from kdmri.datasets.examples import save_nifti, template_1mm, template_slices
from kdmri.datasets.registry import DatasetSpec, register_dataset
from kdmri.datasets.rules import off_size
from kdmri.datasets.sources import (
    SourceVolume,
    load_nifti,
    nifti_header_shape,
    source_files,
    strip_nifti_suffix,
)
from kdmri.errors import ConfigError, DataError

DATASET = "calgary"
TITLE = "Calgary-Campinas CC-359 T1 brain MRI"
NAME_RE = re.compile(r"^(?P<id>CC\d{4})_(?P<vendor>ge|philips|siemens)_(?P<field>15|3)_"
                     r"(?P<age>\d{1,3})_(?P<sex>[MF])$", re.IGNORECASE)
SLICE_AXIS = 0


def _volume(path: Path, stem: str) -> SourceVolume:
    match = NAME_RE.match(stem)
    shape = nifti_header_shape(path)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(f"{path}: expected a 3-D volume (slices, 256, 256), got shape {shape}")
    native = (shape[1], shape[2], shape[0])  # (H, W, slices) once the slice axis is moved last

    def load(path: Path = path) -> np.ndarray:
        data = load_nifti(path)
        return np.moveaxis(data.reshape(data.shape[:3]), SLICE_AXIS, -1)

    field = match["field"]
    return SourceVolume(
        name=stem, subject=match["id"].upper(), sources=(path,), shape=native, load=load,
        attrs={"vendor": match["vendor"].lower(), "field_strength_T": 1.5 if field == "15" else 3.0,
               "age": int(match["age"]), "sex": match["sex"].upper()},
    )


def discover(src: Path, options: PrepareOptions) -> list[SourceVolume]:
    """Every CC-359 T1 volume in ``src/Original`` (or ``src`` itself), sorted by name."""
    if options.contrast is not None:
        raise ConfigError("--contrast applies to mrbrain only; CC-359 holds T1 volumes")
    root = src / "Original" if (src / "Original").is_dir() else src
    files = []
    for path in source_files(root):
        stem = strip_nifti_suffix(path.name)
        if stem is None:
            continue
        if not NAME_RE.match(stem):
            raise DataError(f"{path}: unexpected file name; expected CC-359 T1 volumes named "
                            "like CC0001_philips_15_55_M.nii.gz (masks and labels are not read: "
                            "point --src at the download's Original/ folder)")
        files.append((path, stem))
    if not files:
        raise DataError(f"{root}: no CC-359 volumes found (expected e.g. "
                        "Original/CC0001_philips_15_55_M.nii.gz)")
    return [_volume(path, stem) for path, stem in files]


def check_layout(shape: tuple[int, ...], size: tuple[int, int]) -> str | None:
    """CC-359 volumes are (slices, 256, 256): axes 1 and 2 must be about the target size (a
    volume stored slices-last, e.g. (256, 256, 26), would give 256 slices of 256 x 26)."""
    if off_size(shape, size):
        return (f"in-plane size {shape[0]} x {shape[1]} (axes 1 and 2 of the file) is not about "
                f"{size[0]} x {size[1]}; CC-359 volumes are stored (slices, 256, 256) with the "
                "slice axis first")
    return None


VENDORS = ("philips_15_55_M", "siemens_3_42_F", "ge_15_60_F", "ge_3_38_M", "philips_3_47_F")


def write_example(root: Path, n_subjects: int, n_slices: int) -> None:
    """``Original/CC0001_philips_15_55_M.nii.gz`` ...: (slices, 256, 256), int16, 1 mm."""
    template = template_1mm()
    for k in range(n_subjects):
        name = f"CC{k + 1:04d}_{VENDORS[k % len(VENDORS)]}"
        vol = template_slices(template, k, n_slices, "sagittal", (256, 256))
        save_nifti(root / "Original" / f"{name}.nii.gz", np.moveaxis(vol, -1, 0), (1.0, 1.0, 1.0))


SPEC = register_dataset(DatasetSpec(
    name=DATASET, shape=(256, 256), label="Calgary", title=TITLE, discover=discover,
    write_example=write_example, official_split=None, check_layout=check_layout,
    module=__name__,
    notes="sagittal slices data[s, :, :] of the Original/ T1 volumes; no official split.",
    description="Calgary-Campinas CC-359 brain MRI, 256 x 256",
    approx_slices=(48_800, 12_200, "CC-359: 359 subjects x ~170 slices, seeded 80/20 split"),
    sr_keep=64, sr_only=True,  # KD-MRI's super-resolution: 64 x 64 of 256 x 256 kept
))
