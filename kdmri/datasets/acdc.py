"""ACDC (cine cardiac MRI) -> ``cardiac``: the ED and ES frames of every patient.

On-disk layout of the ACDC download (``database/`` once unpacked)::

    training/patient001/Info.cfg                     ED: 1, ES: 12, Group, Height, NbFrame, Weight
    training/patient001/patient001_4d.nii.gz         (X, Y, Z, T) whole cine series (not used)
    training/patient001/patient001_frame01.nii.gz    (X, Y, Z) ED frame, short-axis slices on Z
    training/patient001/patient001_frame01_gt.nii.gz segmentation (not used)
    training/patient001/patient001_frame12.nii.gz    (X, Y, Z) ES frame
    testing/patient101/...                           same files

Every ``patientNNN`` folder found below ``--src`` is used. The two frame files that
``Info.cfg`` names (``ED`` and ``ES``) become two output volumes,
``patientNNN_frameEE.h5`` and ``patientNNN_frameSS.h5``, whose slices are the short-axis
slices ``data[:, :, z]`` in the stored voxel order (no reorientation, no resampling).
The in-plane size (it varies between patients, mostly above 150 pixels a side) is brought
to 150 x 150 by a centred crop (or zero padding): no resampling, so the native resolution
(about 1.4-1.7 mm) is kept, and the heart, which sits near the image centre, stays in
view. Split unit: the patient. Official split: ``training`` -> train, ``testing`` ->
validation.
"""

from __future__ import annotations

import re
from pathlib import Path

from kdmri.datasets.convert import PrepareOptions
from kdmri.datasets.examples import save_nifti, template_1mm, template_slices
from kdmri.datasets.registry import DatasetSpec, register_dataset
from kdmri.datasets.sources import (
    SourceVolume,
    nifti_3d,
    strip_nifti_suffix,
    visible_files,
    walk_dirs,
)
from kdmri.errors import ConfigError, DataError

DATASET = "cardiac"
TITLE = "ACDC cine cardiac MRI"
PATIENT_RE = re.compile(r"^patient\d{3}$")
FILE_RE = re.compile(r"^(?P<pid>patient\d{3})_(?:4d|frame(?P<frame>\d{2})(?P<gt>_gt)?)$")
OFFICIAL = {"training": "train", "testing": "validation"}


def read_info_cfg(path: Path) -> dict[str, str]:
    """``Info.cfg`` as a dict (``{'ED': '1', 'ES': '12', 'Group': 'DCM', ...}``)."""
    if not path.is_file():
        raise DataError(f"{path}: missing Info.cfg (expected lines such as 'ED: 1' and 'ES: 12')")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable Info.cfg ({exc})") from exc
    info = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    return info


def _frame_index(info: dict[str, str], key: str, cfg: Path) -> int:
    value = info.get(key)
    try:
        frame = int(float(value)) if value is not None else None
    except ValueError:
        frame = None
    if frame is None or frame < 1:
        raise DataError(f"{cfg}: expected a line '{key}: <frame number>' (a positive integer), "
                        f"got {value!r}")
    return frame


def _find_frame(folder: Path, pid: str, frame: int) -> Path | None:
    for suffix in (".nii.gz", ".nii"):
        path = folder / f"{pid}_frame{frame:02d}{suffix}"
        if path.is_file():
            return path
    return None


def _patient_volumes(folder: Path) -> list[SourceVolume]:
    pid = folder.name
    for path in visible_files(folder):
        stem = strip_nifti_suffix(path.name)
        if stem is None:
            continue  # Info.cfg and other non-image files
        match = FILE_RE.match(stem)
        if match is None or match["pid"] != pid:
            raise DataError(f"{path}: unexpected file name in ACDC patient folder {pid}; expected "
                            f"{pid}_frameNN.nii.gz, {pid}_frameNN_gt.nii.gz or {pid}_4d.nii.gz")
    cfg = folder / "Info.cfg"
    info = read_info_cfg(cfg)
    phases: dict[int, list[str]] = {}
    for phase in ("ED", "ES"):
        phases.setdefault(_frame_index(info, phase, cfg), []).append(phase)
    official = OFFICIAL.get(folder.parent.name.lower())
    volumes = []
    for frame, names in sorted(phases.items()):
        path = _find_frame(folder, pid, frame)
        if path is None:
            raise DataError(f"{folder}: missing {pid}_frame{frame:02d}.nii.gz, the "
                            f"{'/'.join(names)} frame named in Info.cfg")
        shape, load = nifti_3d(path, "frame")
        volumes.append(SourceVolume(
            name=f"{pid}_frame{frame:02d}", subject=pid, sources=(path,), shape=shape, load=load,
            official_split=official,
            attrs={"phase": "/".join(names), "frame": frame, "group": info.get("Group", "")},
        ))
    return volumes


def discover(src: Path, options: PrepareOptions) -> list[SourceVolume]:
    """Every ED and ES frame of every ``patientNNN`` folder below ``src``."""
    if options.contrast is not None:
        raise ConfigError("--contrast applies to mrbrain only; ACDC has one (cine SSFP) contrast")
    patients = [d for d in walk_dirs(src) if PATIENT_RE.match(d.name)]
    if not patients:
        raise DataError(f"{src}: no ACDC patient folders found (expected e.g. "
                        "training/patient001/ holding Info.cfg and patient001_frame01.nii.gz)")
    volumes = []
    for folder in patients:
        volumes.extend(_patient_volumes(folder))
    return volumes


#: native slice size of the example files (ACDC's vary, mostly above 150 a side)
EXAMPLE_SIZE = (216, 256)


def write_example(root: Path, n_subjects: int, n_slices: int) -> None:
    """``training/patient001/{Info.cfg, patient001_frame01.nii.gz, patient001_frame09.nii.gz}``
    ..., the last subject in ``testing/patient10N/``: ED 1, ES 9, 216 x 256 x slices, int16."""
    template = template_1mm()
    for k in range(n_subjects):
        split = "testing" if k == n_subjects - 1 else "training"
        number = 101 + k if split == "testing" else 1 + k
        pid = f"patient{number:03d}"
        folder = root / split / pid
        folder.mkdir(parents=True, exist_ok=True)
        ed, es = 1, 9
        (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: NOR\nHeight: 175.0\n"
                                         f"NbFrame: 30\nWeight: 70.0\n")
        for frame, shift in ((ed, 0), (es, 1)):
            vol = template_slices(template, k + shift, n_slices, "axial", EXAMPLE_SIZE)
            save_nifti(folder / f"{pid}_frame{frame:02d}.nii.gz", vol, (1.5625, 1.5625, 10.0))


SPEC = register_dataset(DatasetSpec(
    name=DATASET, shape=(150, 150), label="Cardiac", title=TITLE, discover=discover,
    write_example=write_example, official_split=OFFICIAL, module=__name__,
    notes="ED and ES frames of every patient; short-axis slices, centre-cropped to 150 x 150.",
    description="ACDC cardiac cine MRI, 150 x 150",
    approx_slices=(1_900, 950, "ACDC: 100 training / 50 testing patients x 2 frames x ~9.5 slices"),
))
