"""kdmri.datasets.examples writes stand-ins in each real on-disk format that the converters accept."""

import h5py
import nibabel as nib
import numpy as np
import pytest

from kdmri.datasets import PrepareOptions, acdc, discover, prepare
from kdmri.datasets.examples import make_example_source
from kdmri.errors import ConfigError

QUIET = PrepareOptions(progress=False, accs=("4x",))


def files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_cardiac_layout_and_official_split(tmp_path):
    src = make_example_source("cardiac", tmp_path / "acdc", n_subjects=2, n_slices=2)
    assert files(src) == [
        "testing/patient102/Info.cfg", "testing/patient102/patient102_frame01.nii.gz",
        "testing/patient102/patient102_frame09.nii.gz", "training/patient001/Info.cfg",
        "training/patient001/patient001_frame01.nii.gz", "training/patient001/patient001_frame09.nii.gz"]
    assert "ES: 9" in (src / "training/patient001/Info.cfg").read_text()
    img = nib.load(str(src / "training/patient001/patient001_frame01.nii.gz"))
    assert img.shape == (*acdc.EXAMPLE_SIZE, 2) and img.get_data_dtype() == np.int16
    report = prepare("cardiac", src, tmp_path / "out", PrepareOptions(progress=False, accs=("4x",),
                                                                     split="official"))
    assert report.volumes == {"train": 2, "validation": 2}
    with h5py.File(tmp_path / "out/cardiac/validation/patient102_frame09.h5") as fh:
        assert fh["volfs"].shape == (150, 150, 2)


def test_mrbrain_three_contrasts(tmp_path):
    src = make_example_source("mrbrain", tmp_path / "mrb", n_subjects=2, n_slices=3)
    assert files(src)[:3] == ["TestData/2/T1.nii", "TestData/2/T1_IR.nii", "TestData/2/T2_FLAIR.nii"]
    volumes = discover("mrbrain", src, PrepareOptions(contrast="FLAIR"))
    assert [v.name for v in volumes] == ["TestData_2_T2_FLAIR", "TrainingData_1_T2_FLAIR"]
    assert volumes[0].shape == (240, 240, 3)
    report = prepare("mrbrain", src, tmp_path / "out", QUIET)
    assert report.slices == {"train": 3, "validation": 3}


def test_knee_kspace_is_the_centred_transform_of_a_magnitude_image(tmp_path):
    src = make_example_source("knee", tmp_path / "knee", n_subjects=2, n_slices=2)
    assert files(src) == ["singlecoil_train/file1000001.h5", "singlecoil_val/file1000002.h5"]
    with h5py.File(src / "singlecoil_train/file1000001.h5") as fh:
        k = fh["kspace"][()]
        assert k.dtype == np.complex64 and k.shape == (2, 640, 372)
        assert {"reconstruction_esc", "ismrmrd_header"} <= set(fh) and "mask" not in fh
        assert fh.attrs["patient_id"] == "example-patient-1"
    axes = (-2, -1)
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=axes), axes=axes, norm="ortho"),
                            axes=axes)
    assert np.abs(image).max() > 0.5 and np.abs(image)[:, :60].max() < 1e-3  # padded rows empty
    report = prepare("knee", src, tmp_path / "out", PrepareOptions(progress=False, accs=("4x",),
                                                                  split="official"))
    assert report.subjects == {"train": 1, "validation": 1}
    with h5py.File(tmp_path / "out/knee/train/file1000001.h5") as fh:
        assert fh["volfs"].shape == (640, 368, 2)


def test_calgary_converted_slices_are_the_written_ones(tmp_path):
    src = make_example_source("calgary", tmp_path / "cc359", n_subjects=3, n_slices=2)
    assert files(src) == ["Original/CC0001_philips_15_55_M.nii.gz", "Original/CC0002_siemens_3_42_F.nii.gz",
                          "Original/CC0003_ge_15_60_F.nii.gz"]
    report = prepare("calgary", src, tmp_path / "out", QUIET)
    assert report.volumes == {"train": 2, "validation": 1}
    raw = nib.load(str(src / "Original/CC0001_philips_15_55_M.nii.gz")).get_fdata()
    assert raw.shape == (2, 256, 256)
    split = "train" if (tmp_path / "out/calgary/train/CC0001_philips_15_55_M.h5").exists() else "validation"
    with h5py.File(tmp_path / f"out/calgary/{split}/CC0001_philips_15_55_M.h5") as fh:
        volfs = fh["volfs"][()]
    expected = np.moveaxis(np.maximum(raw, 0), 0, -1)
    np.testing.assert_allclose(volfs, expected / expected.max(), atol=1e-6)
    # subjects differ (slices a few millimetres apart), slices within a subject differ
    other = nib.load(str(src / "Original/CC0002_siemens_3_42_F.nii.gz")).get_fdata()
    assert not np.allclose(raw, other) and not np.allclose(raw[0], raw[1])


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="dataset 'brats'"):
        make_example_source("brats", tmp_path)
    with pytest.raises(ConfigError, match="at least 2 subjects"):
        make_example_source("calgary", tmp_path, n_subjects=1)
