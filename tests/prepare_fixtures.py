"""Small files in each real dataset's on-disk format, for the converter tests.

Same folder layout, file names, keys, dtypes and axis conventions as the downloads
(ACDC, MRBrainS13, fastMRI single-coil knee, Calgary-Campinas CC-359), with few slices.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

from kdmri.physics.masks import cartesian_mask, save_mask


def anatomy(shape: tuple[int, ...], seed: int, offset: float = 0.0) -> np.ndarray:
    """Smooth non-negative blobs plus noise, ``shape`` = (A, B, slices)."""
    rng = np.random.default_rng(seed)
    a, b, s = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, a), np.linspace(-1, 1, b), indexing="ij")
    out = np.empty(shape)
    for k in range(s):
        cy, cx = 0.3 * rng.standard_normal(2)
        out[..., k] = 800 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) * (3 + k))
    return out + 50 * rng.random(shape) + offset


def save_nifti(path: Path, data: np.ndarray, zooms: tuple[float, ...], dtype=np.int16) -> Path:
    """NIfTI-1 file with a diagonal affine of ``zooms`` (``.nii`` or ``.nii.gz`` by name)."""
    affine = np.diag([*zooms[:3], 1.0])
    img = nib.Nifti1Image(np.asarray(data).astype(dtype), affine)
    img.header.set_zooms(zooms)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


# ----------------------------------------------------------------------------- ACDC


def make_acdc_patient(root: Path, split: str, number: int, shape=(160, 170, 3),
                      ed: int = 1, es: int = 3, n_frames: int = 4, seed: int | None = None,
                      with_4d: bool = True) -> Path:
    """``root/<split>/patientNNN/`` with Info.cfg, ED/ES frames (+ _gt) and the 4-D file."""
    pid = f"patient{number:03d}"
    folder = root / split / pid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Info.cfg").write_text(
        f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 184.0\nNbFrame: {n_frames}\nWeight: 95.0\n")
    rng_seed = number if seed is None else seed
    series = np.stack([anatomy(shape, rng_seed * 10 + t) for t in range(n_frames)], axis=-1)
    zooms = (1.5625, 1.5625, 10.0)
    for frame in (ed, es):
        save_nifti(folder / f"{pid}_frame{frame:02d}.nii.gz", series[..., frame - 1], zooms)
        save_nifti(folder / f"{pid}_frame{frame:02d}_gt.nii.gz",
                   (series[..., frame - 1] > 400).astype(np.uint8), zooms, np.uint8)
    if with_4d:
        save_nifti(folder / f"{pid}_4d.nii.gz", series, (*zooms, 1.0))
    return folder


def make_acdc(root: Path, training=(1, 2, 3, 4), testing=(101,), shape=(160, 170, 3)) -> Path:
    """An ACDC ``database/`` folder with ``training/`` and ``testing/`` patients."""
    for n in training:
        make_acdc_patient(root, "training", n, shape)
    for n in testing:
        make_acdc_patient(root, "testing", n, shape)
    (root / "MANDATORY_CITATION.md").write_text("Bernard et al., IEEE TMI 2018\n")
    return root


# ----------------------------------------------------------------------------- MRBrainS13


def make_mrbrains_subject(root: Path, split: str, number: int, shape=(240, 240, 3),
                          dtype=np.float32) -> Path:
    """``root/<split>/<n>/`` with T1, T1_IR, T2_FLAIR, T1_1mm (.nii) and labels."""
    folder = root / split / str(number)
    zooms = (0.958, 0.958, 3.0)
    for k, name in enumerate(("T1", "T1_IR", "T2_FLAIR")):
        save_nifti(folder / f"{name}.nii", anatomy(shape, number * 7 + k), zooms, dtype)
    save_nifti(folder / "T1_1mm.nii", anatomy((20, 24, 18), number), (1.0, 1.0, 1.0), np.int16)
    if split == "TrainingData":
        labels = (anatomy(shape, number) > 400).astype(np.uint8)
        save_nifti(folder / "LabelsForTraining.nii", labels, zooms, np.uint8)
        save_nifti(folder / "LabelsForTesting.nii", labels, zooms, np.uint8)
    return folder


def make_mrbrains(root: Path, training=(1, 2, 3, 4, 5), testing=(), shape=(240, 240, 3)) -> Path:
    """An MRBrainS13 NIfTI release with ``TrainingData/`` (and ``TestData/``)."""
    for n in training:
        make_mrbrains_subject(root, "TrainingData", n, shape)
    for n in testing:
        make_mrbrains_subject(root, "TestData", n, shape)
    return root


# ----------------------------------------------------------------------------- fastMRI knee


ISMRMRD_HEADER = (b'<?xml version="1.0" encoding="utf-8"?><ismrmrdHeader xmlns='
                  b'"http://www.ismrm.org/ISMRMRD"><encoding><encodedSpace><matrixSize><x>640</x>'
                  b'<y>372</y><z>1</z></matrixSize></encodedSpace></encoding></ismrmrdHeader>')


def centred_fft(image: np.ndarray) -> np.ndarray:
    """Orthonormal centred 2-D FFT over the last two axes (numpy only)."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=axes), axes=axes,
                                       norm="ortho"), axes=axes)


def make_fastmri_file(path: Path, slices: int = 2, height: int = 640, width: int = 372,
                      seed: int = 0, patient_id: str | None = None, with_kspace: bool = True,
                      test_file: bool = False) -> Path:
    """A fastMRI single-coil file: kspace (slices, H, W) complex64, reconstruction_esc, header."""
    rng = np.random.default_rng(seed)
    mag = np.moveaxis(anatomy((height, width, slices), seed), -1, 0)
    phase = np.exp(1j * 0.3 * rng.standard_normal((slices, 1, 1)))
    kspace = centred_fft(mag * phase).astype(np.complex64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        if with_kspace:
            if test_file:
                mask = np.zeros(width, dtype=bool)
                mask[::4] = True
                fh.create_dataset("kspace", data=kspace * mask)
                fh.create_dataset("mask", data=mask)
            else:
                fh.create_dataset("kspace", data=kspace)
        recon = mag[:, height // 2 - 160: height // 2 + 160, :320].astype(np.float32)
        if recon.shape[-1] < 320:
            recon = np.pad(recon, ((0, 0), (0, 0), (0, 320 - recon.shape[-1])))
        if not test_file:
            fh.create_dataset("reconstruction_esc", data=recon)
        fh.create_dataset("ismrmrd_header", data=ISMRMRD_HEADER)
        fh.attrs["acquisition"] = "CORPD_FBK"
        fh.attrs["max"] = float(recon.max())
        fh.attrs["norm"] = float(np.linalg.norm(recon))
        if patient_id is not None:
            fh.attrs["patient_id"] = patient_id
    return path


# ----------------------------------------------------------------------------- CC-359


def make_calgary_file(folder: Path, name: str, shape=(3, 256, 256), seed: int = 0,
                      negative: bool = False) -> Path:
    """``folder/<name>.nii.gz``: a CC-359 T1 volume, (slices, 256, 256), 1 mm, int16."""
    data = np.moveaxis(anatomy((shape[1], shape[2], shape[0]), seed), -1, 0)
    if negative:
        data[:, :4, :4] = -30.0  # a few negative voxels, as interpolation leaves them
    return save_nifti(folder / f"{name}.nii.gz", data, (1.0, 1.0, 1.0), np.int16)


CALGARY_NAMES = ("CC0001_philips_15_55_M", "CC0002_philips_15_56_M", "CC0003_siemens_3_42_F",
                 "CC0004_ge_15_60_F", "CC0005_ge_3_38_M")


def make_calgary(root: Path, names=CALGARY_NAMES, shape=(3, 256, 256)) -> Path:
    """A CC-359 download: ``Original/`` volumes plus a ``Silver-standard/`` mask folder."""
    for k, name in enumerate(names):
        make_calgary_file(root / "Original", name, shape, seed=k, negative=(k == 0))
    mask = np.ones(shape, dtype=np.uint8)
    save_nifti(root / "Silver-standard" / f"{names[0]}_ss.nii.gz", mask, (1.0, 1.0, 1.0), np.uint8)
    return root


# ----------------------------------------------------------------------------- masks


def make_masks(root: Path, dataset: str, size: tuple[int, int], accs=(4, 8)) -> Path:
    """Masks ``root/<dataset>/mask_<acc>.npy`` of a non-reference ``size`` (small tests)."""
    for acc in accs:
        save_mask(cartesian_mask(size, acc, seed=acc), root / dataset / f"mask_{acc}x.npy")
    return root
