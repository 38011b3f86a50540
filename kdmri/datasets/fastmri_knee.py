"""fastMRI knee, single-coil -> ``knee``: 640 x 368 magnitude images from the full k-space.

On-disk layout of the fastMRI single-coil knee download::

    singlecoil_train/file1000001.h5
        kspace              complex64 (slices, 640, W)   fully sampled, centred (W ~ 368-372)
        reconstruction_esc  float32   (slices, 320, 320) (not used)
        ismrmrd_header      bytes     XML acquisition header (not used)
        attrs: acquisition ('CORPD_FBK' / 'CORPDFS_FBK'), max, norm, patient_id
    singlecoil_val/file1000000.h5      same keys
    singlecoil_test_v2/...             undersampled (has a 'mask' key): rejected here;
                                       `python -m kdmri reconstruct` reads it

Each slice is ``|ifft2c(kspace[s])|`` (orthonormal, centred, :func:`kdmri.physics.fft.ifft2c`), a
640 x W image (readout x phase encode, readout oversampling kept as in the KD-MRI
reference size); the width is centre-cropped (or zero-padded) **in the image domain** to
368 columns. Every slice of a file is kept. Split unit: the patient (``patient_id``
attribute when present, else the file); official split: ``singlecoil_train`` -> train,
``singlecoil_val`` -> validation.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np

from kdmri.datasets.convert import PrepareOptions
from kdmri.datasets.examples import template_1mm, template_slices
from kdmri.datasets.registry import DatasetSpec, register_dataset
from kdmri.datasets.sources import SourceVolume, check_finite, source_files
from kdmri.errors import ConfigError, DataError
from kdmri.physics.fft import fft2c, ifft2c

DATASET = "knee"
TITLE = "fastMRI knee (single-coil)"
FILE_RE = re.compile(r"^file\d+\.h5$")
OFFICIAL = {"singlecoil_train": "train", "singlecoil_val": "validation"}


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc}); it may be truncated or "
                        "corrupt: download it again") from exc


def _attr_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _official(path: Path) -> str | None:
    for parent in path.parents:
        name = parent.name.lower()
        for prefix, split in OFFICIAL.items():
            if name.startswith(prefix):
                return split
    return None


def _file_volume(path: Path) -> SourceVolume:
    with _open(path) as fh:
        keys = sorted(fh.keys())
        if "kspace" not in fh:
            raise DataError(f"{path}: missing key 'kspace' (keys present: {keys}); expected a "
                            "fastMRI single-coil file with fully sampled k-space")
        if "mask" in fh:
            raise DataError(f"{path}: undersampled fastMRI test/challenge file (has a 'mask'); "
                            "training data need fully sampled k-space (singlecoil_train or "
                            "singlecoil_val); to reconstruct this file, use `python -m kdmri "
                            "reconstruct --input` on it")
        kspace = fh["kspace"]
        if kspace.ndim == 4:
            raise DataError(f"{path}: multi-coil k-space {kspace.shape} (slices, coils, H, W); "
                            "expected single-coil (slices, 640, W)")
        if kspace.ndim != 3 or not np.issubdtype(kspace.dtype, np.complexfloating):
            raise DataError(f"{path}: 'kspace' is {kspace.dtype} {kspace.shape}; expected complex "
                            "(slices, 640, W)")
        slices, height, width = (int(n) for n in kspace.shape)
        if slices == 0:
            raise DataError(f"{path}: 'kspace' has no slices")
        attrs = {k: _attr_text(fh.attrs[k]) for k in ("acquisition", "patient_id")
                 if k in fh.attrs}

    def load(path: Path = path) -> np.ndarray:
        with _open(path) as fh:
            try:
                k = fh["kspace"][()]
            except (OSError, KeyError) as exc:
                raise DataError(f"{path}: could not read 'kspace' ({exc}); the file may be "
                                "truncated or corrupt: download it again") from exc
        check_finite(np.moveaxis(k, 0, -1), path, "'kspace'")
        image = np.abs(ifft2c(k.astype(np.complex128)))  # (slices, H, W)
        return np.moveaxis(image, 0, -1)

    subject = attrs.get("patient_id") or path.stem
    return SourceVolume(name=path.stem, subject=subject, sources=(path,),
                        shape=(height, width, slices), load=load, official_split=_official(path),
                        attrs={"acquisition": attrs.get("acquisition", "")})


def discover(src: Path, options: PrepareOptions) -> list[SourceVolume]:
    """Every ``file*.h5`` below ``src`` (sorted)."""
    if options.contrast is not None:
        raise ConfigError("--contrast applies to mrbrain only; the knee files hold their own "
                          "acquisition (CORPD_FBK / CORPDFS_FBK)")
    files = [p for p in source_files(src) if p.suffix in (".h5", ".hdf5")]
    if not files:
        raise DataError(f"{src}: no fastMRI .h5 files found (expected e.g. "
                        "singlecoil_train/file1000001.h5)")
    for path in files:
        if not FILE_RE.match(path.name):
            raise DataError(f"{path}: unexpected file name; expected fastMRI knee files named "
                            "like file1000001.h5")
    return [_file_volume(path) for path in files]


def check_layout(shape: tuple[int, ...], size: tuple[int, int]) -> str | None:
    """fastMRI single-coil knee k-space has 640 readout rows (the target height); only the
    phase-encode width varies (about 368-372) and is cropped / padded."""
    if shape[0] != size[0]:
        return (f"'kspace' has {shape[0]} readout rows; fastMRI single-coil knee k-space is "
                f"(slices, {size[0]}, W) and its rows are never cropped or padded")
    return None


#: native k-space size of the example files
EXAMPLE_SIZE = (640, 372)


def write_example(root: Path, n_subjects: int, n_slices: int) -> None:
    """``singlecoil_train/file1000001.h5`` ..., the last subject in ``singlecoil_val/``, with
    ``kspace`` complex64 (slices, 640, 372), centred, fully sampled, plus
    ``reconstruction_esc``, ``ismrmrd_header`` and the ``acquisition`` / ``patient_id``
    attributes."""
    template = template_1mm()
    height, width = EXAMPLE_SIZE
    for k in range(n_subjects):
        split = "singlecoil_val" if k == n_subjects - 1 else "singlecoil_train"
        path = root / split / f"file{1000001 + k}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        mag = np.moveaxis(template_slices(template, k, n_slices, "axial", (height, width)), -1, 0)
        yy = np.linspace(-1, 1, height)[:, None]
        phase = np.exp(1j * (0.4 * yy + 0.1 * k))  # a smooth phase, as a real scan has
        kspace = fft2c(mag * phase).astype(np.complex64)
        with h5py.File(path, "w") as fh:
            fh.create_dataset("kspace", data=kspace)
            recon = mag[:, height // 2 - 160:height // 2 + 160, width // 2 - 160:width // 2 + 160]
            fh.create_dataset("reconstruction_esc", data=recon.astype(np.float32))
            fh.create_dataset("ismrmrd_header", data=b"<ismrmrdHeader/>")
            fh.attrs["acquisition"] = "CORPD_FBK"
            fh.attrs["patient_id"] = f"example-patient-{k + 1}"
            fh.attrs["max"] = float(recon.max())
            fh.attrs["norm"] = float(np.linalg.norm(recon))


SPEC = register_dataset(DatasetSpec(
    name=DATASET, shape=(640, 368), label="Knee", title=TITLE, discover=discover,
    write_example=write_example, official_split=OFFICIAL, check_layout=check_layout,
    module=__name__,
    notes="|ifft2c(kspace)| of every slice, 640 x W cropped / padded to 368 columns; read "
          "from disk in training (params/knee_*.yaml: in_memory false, num_workers 4).",
    description="fastMRI knee single-coil, 640 x 368",
    approx_slices=(34_742, 7_135, "fastMRI single-coil knee: 973 train / 199 validation files"),
))
