"""Tiny stand-ins for the real downloads, in each dataset's on-disk format (no download).

:func:`make_example_source` writes a folder with the folder layout, file names, file
formats, keys, dtypes and axis order that :mod:`kdmri.datasets` reads from the real
download of ``cardiac`` (ACDC), ``mrbrain`` (MRBrainS13), ``knee`` (fastMRI single-coil)
or ``calgary`` (CC-359), holding a few slices per subject. It lets a reader (notebook
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

from kdmri.errors import ConfigError

#: Native slice size written per dataset (what the real files hold, before the converter
#: crops / pads to the reference size).
NATIVE_SIZE = {"cardiac": (216, 256), "mrbrain": (240, 240), "knee": (640, 372),
               "calgary": (256, 256)}
CALGARY_VENDORS = ("philips_15_55_M", "siemens_3_42_F", "ge_15_60_F", "ge_3_38_M", "philips_3_47_F")


def _template_1mm() -> np.ndarray:
    """The 1 mm MNI152 template (197, 233, 189) scaled to [0, 1]."""
    import nibabel as nib

    from kdmri.data.demo import template_path

    vol = np.asarray(nib.load(str(template_path())).dataobj, dtype=np.float32)
    return vol / vol.max()


def _pad(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre ``img`` in a zero image of ``size`` (cropping where it is larger)."""
    out = np.zeros(size, dtype=np.float32)
    h, w = min(img.shape[0], size[0]), min(img.shape[1], size[1])
    r, c = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    top, left = (size[0] - h) // 2, (size[1] - w) // 2
    out[top:top + h, left:left + w] = img[r:r + h, c:c + w]
    return out


def _slices(template: np.ndarray, subject: int, n_slices: int, view: str,
            size: tuple[int, int]) -> np.ndarray:
    """``(H, W, n_slices)``: ``n_slices`` slices 3 mm apart, shifted by 5 mm per subject."""
    axis = {"axial": 2, "sagittal": 0}[view]
    centre = template.shape[axis] // 2 - 10 + 5 * subject
    idx = centre + 3 * (np.arange(n_slices) - n_slices // 2)
    out = [_pad(np.rot90(np.take(template, int(i), axis=axis)), size) for i in idx]
    return np.stack(out, axis=-1)


def _save_nifti(path: Path, data: np.ndarray, zooms: tuple[float, float, float],
                dtype=np.int16) -> Path:
    import nibabel as nib

    scaled = np.round(data * 1000) if np.issubdtype(dtype, np.integer) else data
    img = nib.Nifti1Image(scaled.astype(dtype), np.diag([*zooms, 1.0]))
    img.header.set_zooms(zooms)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def _cardiac(root: Path, template: np.ndarray, n_subjects: int, n_slices: int) -> None:
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
            vol = _slices(template, k + shift, n_slices, "axial", NATIVE_SIZE["cardiac"])
            _save_nifti(folder / f"{pid}_frame{frame:02d}.nii.gz", vol, (1.5625, 1.5625, 10.0))


def _mrbrain(root: Path, template: np.ndarray, n_subjects: int, n_slices: int) -> None:
    for k in range(n_subjects):
        split = "TestData" if k == n_subjects - 1 else "TrainingData"
        folder = root / split / str(k + 1)
        t1 = _slices(template, k, n_slices, "axial", NATIVE_SIZE["mrbrain"])
        head = t1 > 0.05
        contrasts = {"T1": t1, "T1_IR": t1 ** 2, "T2_FLAIR": np.where(head, 1.0 - 0.8 * t1, 0.0)}
        for name, vol in contrasts.items():
            _save_nifti(folder / f"{name}.nii", vol, (0.958, 0.958, 3.0), np.float32)


def _knee(root: Path, template: np.ndarray, n_subjects: int, n_slices: int) -> None:
    import h5py

    from kdmri.physics.fft import fft2c

    height, width = NATIVE_SIZE["knee"]
    for k in range(n_subjects):
        split = "singlecoil_val" if k == n_subjects - 1 else "singlecoil_train"
        path = root / split / f"file{1000001 + k}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        mag = np.moveaxis(_slices(template, k, n_slices, "axial", (height, width)), -1, 0)
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


def _calgary(root: Path, template: np.ndarray, n_subjects: int, n_slices: int) -> None:
    for k in range(n_subjects):
        name = f"CC{k + 1:04d}_{CALGARY_VENDORS[k % len(CALGARY_VENDORS)]}"
        vol = _slices(template, k, n_slices, "sagittal", NATIVE_SIZE["calgary"])
        _save_nifti(root / "Original" / f"{name}.nii.gz", np.moveaxis(vol, -1, 0), (1.0, 1.0, 1.0))


_WRITERS = {"cardiac": _cardiac, "mrbrain": _mrbrain, "knee": _knee, "calgary": _calgary}


def make_example_source(dataset: str, folder: Path | str, n_subjects: int = 3,
                        n_slices: int = 4) -> Path:
    """Write a tiny stand-in for ``dataset``'s download into ``folder``; returns ``folder``
    (the ``--src`` of ``python -m kdmri prepare``).

    Layout written (``n_subjects`` subjects, ``n_slices`` slices each; the last subject in the
    download's official validation/test folder where the dataset has one):

    * ``cardiac``: ``training/patient001/{Info.cfg, patient001_frame01.nii.gz,
      patient001_frame09.nii.gz}`` ..., ``testing/patient10N/...`` (ED 1, ES 9; 216 x 256
      x slices, int16);
    * ``mrbrain``: ``TrainingData/<n>/{T1,T1_IR,T2_FLAIR}.nii`` ..., ``TestData/<n>/``
      (240 x 240 x slices, float32);
    * ``knee``: ``singlecoil_train/file1000001.h5`` ..., ``singlecoil_val/...`` with
      ``kspace`` complex64 (slices, 640, 372), centred, fully sampled, plus
      ``reconstruction_esc``, ``ismrmrd_header`` and the ``acquisition`` / ``patient_id``
      attributes;
    * ``calgary``: ``Original/CC0001_philips_15_55_M.nii.gz`` ... (slices, 256, 256), int16.

    Raises ConfigError for an unknown dataset or fewer than 2 subjects or 1 slice.
    """
    if dataset not in _WRITERS:
        raise ConfigError(f"dataset {dataset!r}: expected one of {sorted(_WRITERS)}")
    if n_subjects < 2 or n_slices < 1:
        raise ConfigError(f"n_subjects={n_subjects}, n_slices={n_slices}: expected at least 2 "
                          "subjects (a train/validation split) and 1 slice")
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    _WRITERS[dataset](root, _template_1mm(), n_subjects, n_slices)
    return root
