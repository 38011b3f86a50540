"""Converters of the real datasets (kdmri.datasets), on small files in each real format.

Every content check recomputes the expected slices independently (nibabel / h5py load,
explicit index arithmetic for the crop or pad, numpy FFTs), never through kdmri.datasets.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from prepare_fixtures import (
    CALGARY_NAMES,
    make_acdc,
    make_acdc_patient,
    make_calgary,
    make_calgary_file,
    make_fastmri_file,
    make_masks,
    make_mrbrains,
    make_mrbrains_subject,
)

from kdmri.datasets import PrepareOptions, fit_to_size, normalise_volume, prepare, split_subjects
from kdmri.errors import ConfigError, DataError
from kdmri.paths import mask_path
from kdmri.tools.cli import main

QUIET = {"progress": False}


def read_h5(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as fh:
        return {k: fh[k][()] for k in fh.keys()} | {"attrs": dict(fh.attrs)}


def h5_files(root: Path) -> dict[str, set[str]]:
    return {split: {p.stem for p in (root / split).glob("*.h5")} if (root / split).is_dir()
            else set() for split in ("train", "validation")}


def leftovers(root: Path) -> list[Path]:
    """Files under ``root`` except the conversion's lock file (``.locks/<dataset>/.lock``,
    which holds no data and is kept: deleting a lock file races with its next holder)."""
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if p.is_file() and ".locks" not in p.relative_to(root).parts]


def check_undersampling(data: dict, accs=("4x", "5x", "8x"), dataset: str | None = None,
                        masks_root: Path | None = None) -> None:
    """Zero-filled image and k-space recomputed with numpy from volfs and the committed mask."""
    for acc in accs:
        mask = np.load(mask_path(dataset, acc, masks_root)) if dataset else data[f"mask_{acc}"]
        np.testing.assert_array_equal(data[f"mask_{acc}"], mask)
        for s in range(data["volfs"].shape[2]):
            k = np.fft.fft2(data["volfs"][:, :, s].astype(np.float64), norm="ortho") * mask
            np.testing.assert_allclose(data[f"kspace_volus_{acc}"][:, :, s], k, atol=2e-5)
            np.testing.assert_allclose(data[f"img_volus_{acc}"][:, :, s],
                                       np.fft.ifft2(k, norm="ortho").real, atol=2e-5)


def expected_norm(vol: np.ndarray) -> np.ndarray:
    vol = np.maximum(vol, 0)
    return vol / vol.max()


# ----------------------------------------------------------------------------- ACDC


def test_cardiac_reference_size_crop_and_pad_split_by_patient(tmp_path):
    src = make_acdc(tmp_path / "database", training=(1, 2, 3), testing=(101,))
    make_acdc_patient(src, "training", 4, shape=(140, 156, 2))  # smaller rows, wider columns
    out = tmp_path / "datasets"
    report = prepare("cardiac", src, out, PrepareOptions(**QUIET))

    root = out / "cardiac"
    files = h5_files(root)
    assert files["train"].isdisjoint(files["validation"])
    assert len(files["train"] | files["validation"]) == 10  # 5 patients x (ED, ES)
    for pid in ("patient001", "patient002", "patient003", "patient004", "patient101"):
        homes = {split for split, names in files.items() for n in names if n.startswith(pid)}
        assert len(homes) == 1  # both frames of a patient in the same split
    assert report.subjects == {"train": 4, "validation": 1}

    # 160 x 170 -> rows 5:155, columns 10:160
    split = "train" if "patient001_frame01" in files["train"] else "validation"
    data = read_h5(root / split / "patient001_frame01.h5")
    raw = nib.load(str(src / "training/patient001/patient001_frame01.nii.gz")).get_fdata()
    assert data["volfs"].shape == (150, 150, 3) and data["volfs"].dtype == np.float32
    np.testing.assert_allclose(data["volfs"], expected_norm(raw[5:155, 10:160, :]), atol=1e-6)
    check_undersampling(data, dataset="cardiac")
    assert data["attrs"]["subject"] == "patient001" and data["attrs"]["phase"] == "ED"

    # 140 x 156 -> 5 zero rows above and below, columns 3:153
    split = "train" if "patient004_frame03" in files["train"] else "validation"
    data = read_h5(root / split / "patient004_frame03.h5")
    raw = nib.load(str(src / "training/patient004/patient004_frame03.nii.gz")).get_fdata()
    want = np.zeros((150, 150, 2))
    want[5:145] = raw[:, 3:153]
    np.testing.assert_allclose(data["volfs"], expected_norm(want), atol=1e-6)
    assert data["attrs"]["phase"] == "ES"

    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["dataset"] == "cardiac" and manifest["kdmri_version"]
    assert manifest["accelerations"] == ["4x", "5x", "8x"]
    assert manifest["mask_files"]["4x"]["path"] == "us_masks/cardiac/mask_4x.npy"
    assert manifest["splits"]["train"]["slices"] + manifest["splits"]["validation"]["slices"] == 28
    entry = next(e for e in manifest["volumes"] if e["name"] == "patient004_frame03")
    assert entry["sources"] == ["training/patient004/patient004_frame03.nii.gz"]
    assert entry["fit"] == "crop+pad" and entry["source_shape"] == [140, 156, 2]
    assert not list(root.rglob("*.tmp"))


def test_cardiac_official_split(tmp_path):
    src = make_acdc(tmp_path / "database", training=(1, 2), testing=(101,), shape=(150, 150, 2))
    prepare("cardiac", src, tmp_path / "out", PrepareOptions(split="official", **QUIET))
    files = h5_files(tmp_path / "out" / "cardiac")
    assert files == {"train": {"patient001_frame01", "patient001_frame03", "patient002_frame01",
                               "patient002_frame03"},
                     "validation": {"patient101_frame01", "patient101_frame03"}}


# ----------------------------------------------------------------------------- MRBrainS


@pytest.mark.parametrize("contrast, stem", [(None, "T1"), ("FLAIR", "T2_FLAIR")])
def test_mrbrain_reference_size_contrast(tmp_path, contrast, stem):
    src = make_mrbrains(tmp_path / "MRBrainS13DataNii", training=(1, 2, 3), testing=(1,),
                        shape=(240, 240, 2))
    report = prepare("mrbrain", src, tmp_path / "out",
                     PrepareOptions(contrast=contrast, accs=("4x",), **QUIET))
    root = tmp_path / "out" / "mrbrain"
    files = h5_files(root)
    assert files["train"] | files["validation"] == {
        f"TrainingData_{n}_{stem}" for n in (1, 2, 3)} | {f"TestData_1_{stem}"}
    assert report.subjects == {"train": 3, "validation": 1}
    for split, names in files.items():
        for name in names:
            folder = "/".join(name.split("_")[:2])
            raw = nib.load(str(src / folder / f"{stem}.nii")).get_fdata()
            data = read_h5(root / split / f"{name}.h5")
            np.testing.assert_allclose(data["volfs"], expected_norm(raw), atol=1e-6)
            assert data["attrs"]["contrast"] == stem
    check_undersampling(data, accs=("4x",), dataset="mrbrain")
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["settings"]["contrast"] == stem


def test_mrbrain_percentile_normalisation(tmp_path):
    src = make_mrbrains(tmp_path / "src", training=(1, 2), shape=(24, 20, 2))
    masks = make_masks(tmp_path / "masks", "mrbrain", (24, 20), accs=(4,))
    prepare("mrbrain", src, tmp_path / "out", PrepareOptions(
        accs=("4x",), size=(24, 20), masks_root=masks, percentile=99.0, val_fraction=0.5, **QUIET))
    root = tmp_path / "out" / "mrbrain"
    split = "train" if (root / "train" / "TrainingData_1_T1.h5").exists() else "validation"
    data = read_h5(root / split / "TrainingData_1_T1.h5")
    raw = np.maximum(nib.load(str(src / "TrainingData/1/T1.nii")).get_fdata(), 0)
    p99 = np.percentile(raw, 99.0)
    np.testing.assert_allclose(data["volfs"], np.clip(raw / p99, 0, 1), atol=1e-6)
    assert data["attrs"]["normalisation_divisor"] == pytest.approx(p99)
    assert (data["volfs"] == 1).sum() >= 1


# ----------------------------------------------------------------------------- fastMRI knee


def test_knee_reference_size_from_full_kspace(tmp_path):
    src = tmp_path / "knee"
    make_fastmri_file(src / "singlecoil_train" / "file1000001.h5", width=372, seed=1)
    make_fastmri_file(src / "singlecoil_train" / "file1000002.h5", width=364, seed=2)
    make_fastmri_file(src / "singlecoil_val" / "file1000003.h5", width=368, seed=3)
    prepare("knee", src, tmp_path / "out", PrepareOptions(split="official", **QUIET))
    root = tmp_path / "out" / "knee"
    assert h5_files(root) == {"train": {"file1000001", "file1000002"},
                              "validation": {"file1000003"}}
    for split, name, cols in (("train", "file1000001", slice(2, 370)),
                              ("train", "file1000002", None),
                              ("validation", "file1000003", slice(0, 368))):
        with h5py.File(src / f"singlecoil_{'val' if split == 'validation' else 'train'}"
                       / f"{name}.h5", "r") as fh:
            k = fh["kspace"][()]
        img = np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)),
                                                  norm="ortho"), axes=(-2, -1)))
        img = np.moveaxis(img, 0, -1)  # (640, W, slices)
        if cols is None:  # 364 -> 2 zero columns each side
            want = np.zeros((640, 368, img.shape[2]))
            want[:, 2:366] = img
        else:
            want = img[:, cols]
        data = read_h5(root / split / f"{name}.h5")
        assert data["volfs"].shape == (640, 368, 2)
        np.testing.assert_allclose(data["volfs"], want / want.max(), atol=1e-6)
        assert data["attrs"]["acquisition"] == "CORPD_FBK"
    check_undersampling(data, dataset="knee")


def test_knee_split_groups_files_of_one_patient(tmp_path):
    src = tmp_path / "knee"
    for n, pid in enumerate(("p1", "p1", "p2", "p3", "p4")):
        make_fastmri_file(src / f"file10000{n:02d}.h5", slices=1, height=32, width=26, seed=n,
                          patient_id=pid)
    masks = make_masks(tmp_path / "masks", "knee", (32, 24), accs=(4,))
    for seed in range(4):
        out = tmp_path / f"out{seed}"
        prepare("knee", src, out, PrepareOptions(accs=("4x",), size=(32, 24), masks_root=masks,
                                                 seed=seed, val_fraction=0.5, **QUIET))
        files = h5_files(out / "knee")
        together = {"file1000000", "file1000001"}
        assert together <= files["train"] or together <= files["validation"]


# ----------------------------------------------------------------------------- Calgary


def test_calgary_reference_size_slice_axis_and_negatives(tmp_path):
    src = make_calgary(tmp_path / "CC359", names=CALGARY_NAMES[:3], shape=(2, 256, 256))
    make_calgary_file(src / "Original", "CC0006_siemens_15_50_F", shape=(2, 250, 260), seed=9)
    report = prepare("calgary", src, tmp_path / "out", PrepareOptions(accs=("8x",), **QUIET))
    root = tmp_path / "out" / "calgary"
    files = h5_files(root)
    assert files["train"] | files["validation"] == set(CALGARY_NAMES[:3]) | {
        "CC0006_siemens_15_50_F"}
    assert report.subjects == {"train": 3, "validation": 1}
    for name in files["train"] | files["validation"]:
        split = "train" if name in files["train"] else "validation"
        raw = nib.load(str(src / "Original" / f"{name}.nii.gz")).get_fdata()  # (slices, H, W)
        want = np.zeros((256, 256, raw.shape[0]))
        for s in range(raw.shape[0]):
            if raw.shape[1:] == (256, 256):
                want[:, :, s] = raw[s]
            else:  # 250 x 260 -> 3 zero rows each side, columns 2:258
                want[3:253, :, s] = raw[s][:, 2:258]
        data = read_h5(root / split / f"{name}.h5")
        np.testing.assert_allclose(data["volfs"], expected_norm(want), atol=1e-6)
        assert data["volfs"].min() >= 0
    assert read_h5(root / split / f"{name}.h5")["attrs"]["vendor"] in {"philips", "siemens"}
    check_undersampling(data, accs=("8x",), dataset="calgary")


def test_calgary_has_no_official_split(tmp_path):
    src = make_calgary(tmp_path / "CC359", names=CALGARY_NAMES[:2], shape=(1, 8, 8))
    with pytest.raises(DataError, match="official split"):
        prepare("calgary", src, tmp_path / "out", PrepareOptions(split="official", **QUIET))


# ----------------------------------------------------------------------------- shared pieces


def test_split_subjects_is_deterministic_and_disjoint():
    ids = [f"s{i:02d}" for i in range(20)]
    a = split_subjects(ids, 0.2, seed=0)
    assert a == split_subjects(reversed(ids), 0.2, seed=0)  # order of discovery is irrelevant
    assert sum(v == "validation" for v in a.values()) == 4 and set(a) == set(ids)
    assert any(split_subjects(ids, 0.2, seed=s) != a for s in range(1, 5))
    assert set(split_subjects(ids, 0.0, 0).values()) == {"train"}
    assert sum(v == "validation" for v in split_subjects(ids[:3], 0.01, 0).values()) == 1
    with pytest.raises(DataError, match="at least 2"):
        split_subjects(["only"], 0.2, 0)
    with pytest.raises(ConfigError):
        split_subjects(ids, 1.5, 0)


def test_fit_to_size_and_normalise_rules():
    x = np.arange(7 * 4, dtype=float).reshape(7, 4)
    np.testing.assert_array_equal(fit_to_size(x, (5, 4)), x[1:6])
    padded = fit_to_size(x, (7, 7))
    np.testing.assert_array_equal(padded[:, 1:5], x)
    assert (padded[:, 0] == 0).all() and (padded[:, 5:] == 0).all()
    vol, scale = normalise_volume(np.array([[-2.0, 1.0], [2.0, 4.0]]))
    np.testing.assert_allclose(vol, [[0, 0.25], [0.5, 1]])
    assert scale == 4.0
    with pytest.raises(DataError, match="all zero"):
        normalise_volume(np.zeros((2, 2, 1)), source="x.nii")


# ----------------------------------------------------------------------------- re-runs


def test_rerun_skips_finished_volumes_and_overwrite_rewrites(tmp_path):
    src = make_acdc(tmp_path / "database", training=(1, 2, 3), testing=(), shape=(150, 150, 1))
    out = tmp_path / "out"
    first = prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
    assert len(first.written) == 6
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cardiac").rglob("*.h5")}
    again = prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
    assert again.written == [] and len(again.skipped) == 6
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    more = prepare("cardiac", src, out, PrepareOptions(accs=("4x", "8x"), **QUIET))
    assert len(more.written) == 6  # a new acceleration makes every volume unfinished
    assert "img_volus_8x" in read_h5(next(iter(stamps)))
    redo = prepare("cardiac", src, out, PrepareOptions(accs=("4x",), overwrite=True, **QUIET))
    assert len(redo.written) == 6 and redo.skipped == []


def test_changed_settings_need_overwrite_and_never_leave_a_volume_in_both_splits(tmp_path):
    src = make_acdc(tmp_path / "database", training=tuple(range(1, 7)), testing=(),
                    shape=(150, 150, 1))
    out = tmp_path / "out"
    prepare("cardiac", src, out, PrepareOptions(accs=("4x",), seed=0, **QUIET))
    before = h5_files(out / "cardiac")
    with pytest.raises(DataError, match=r"different settings \(seed\).*--overwrite"):
        prepare("cardiac", src, out, PrepareOptions(accs=("4x",), seed=3, **QUIET))
    assert h5_files(out / "cardiac") == before
    prepare("cardiac", src, out, PrepareOptions(accs=("4x",), seed=3, overwrite=True, **QUIET))
    after = h5_files(out / "cardiac")
    assert after != before and after["train"].isdisjoint(after["validation"])
    assert len(after["train"] | after["validation"]) == 12
    manifest = json.loads((out / "cardiac" / "manifest.json").read_text())
    assert {e["name"] for e in manifest["volumes"] if e["split"] == "validation"} == \
        after["validation"]


def test_stale_tmp_removed_and_unknown_volume_refused(tmp_path):
    src = make_acdc(tmp_path / "database", training=(1, 2), testing=(), shape=(150, 150, 1))
    out = tmp_path / "out"
    (out / "cardiac" / "train").mkdir(parents=True)
    (out / "cardiac" / "train" / "patient001_frame01.h5.tmp").write_bytes(b"half")
    prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
    assert not list((out / "cardiac").rglob("*.tmp"))
    stray = out / "cardiac" / "validation" / "someone_else.h5"
    stray.write_bytes(b"x")
    with pytest.raises(DataError, match="someone_else.h5"):
        prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))


# ----------------------------------------------------------------------------- bad input


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(["prepare", *args, "--quiet"])
    err = capsys.readouterr().err
    return code, err


def assert_one_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_missing_and_empty_source_folder(tmp_path, capsys):
    code, err = run_cli(["cardiac", "--src", str(tmp_path / "nope"), "--out", str(tmp_path)],
                        capsys)
    assert_one_error(code, err, "nope", "source folder not found")
    (tmp_path / "empty").mkdir()
    code, err = run_cli(["knee", "--src", str(tmp_path / "empty"), "--out", str(tmp_path)], capsys)
    assert_one_error(code, err, "empty", "source folder is empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.txt").write_text("x")
    code, err = run_cli(["mrbrain", "--src", str(tmp_path / "other"), "--out", str(tmp_path)],
                        capsys)
    assert_one_error(code, err, "no MRBrainS subject folders", "T1.nii")


@pytest.mark.parametrize("dataset, build, needle", [
    ("cardiac", lambda r: make_acdc_patient(r, "training", 1, (8, 8, 1), n_frames=3)
     / "patient001_frame1.nii.gz", "patient001_frameNN.nii.gz"),
    ("mrbrain", lambda r: make_mrbrains_subject(r, "TrainingData", 1, (8, 8, 1))
     / "T1_ir.nii", "T2_FLAIR.nii"),
    ("knee", lambda r: make_fastmri_file(r / "file1000001.h5", 1, 8, 8).parent / "kspace.h5",
     "file1000001.h5"),
    ("calgary", lambda r: make_calgary(r, CALGARY_NAMES[:2], (1, 8, 8)) / "Original"
     / "CC0009_toshiba_15_50_M.nii.gz", "CC0001_philips_15_55_M.nii.gz"),
])
def test_unexpected_file_name(tmp_path, capsys, dataset, build, needle):
    src = tmp_path / "src"
    bad = build(src)
    bad.write_bytes(b"not really")
    code, err = run_cli([dataset, "--src", str(src), "--out", str(tmp_path / "out")], capsys)
    assert_one_error(code, err, bad.name, "unexpected file name", needle)
    assert not (tmp_path / "out").exists()


def test_corrupt_nifti_header(tmp_path, capsys):
    src = make_calgary(tmp_path / "cc", CALGARY_NAMES[:2], (1, 8, 8))
    bad = src / "Original" / f"{CALGARY_NAMES[1]}.nii.gz"
    bad.write_bytes(gzip.compress(b"garbage" * 10))
    code, err = run_cli(["calgary", "--src", str(src), "--out", str(tmp_path / "out")], capsys)
    assert_one_error(code, err, bad.name, "not a readable NIfTI", "corrupt")
    assert leftovers(tmp_path / "out") == []


def test_truncated_nifti_rolls_back_the_whole_run(tmp_path, capsys):
    src = make_acdc(tmp_path / "database", training=(1, 2, 3), testing=(), shape=(150, 150, 2))
    bad = src / "training" / "patient003" / "patient003_frame03.nii.gz"  # converted last
    blob = bad.read_bytes()
    bad.write_bytes(blob[: len(blob) // 2])
    out = tmp_path / "out"
    code, err = run_cli(["cardiac", "--src", str(src), "--out", str(out)], capsys)
    assert_one_error(code, err, bad.name, "truncated")
    assert not (out / "cardiac").exists()  # five volumes were written, then removed


def test_truncated_uncompressed_nifti(tmp_path):
    src = make_mrbrains(tmp_path / "mrb", training=(1, 2), shape=(16, 16, 2))
    bad = src / "TrainingData" / "2" / "T1.nii"
    bad.write_bytes(bad.read_bytes()[:600])
    masks = make_masks(tmp_path / "masks", "mrbrain", (16, 16), accs=(4,))
    with pytest.raises(DataError, match=r"(?s)TrainingData/2/T1\.nii.*truncated"):
        prepare("mrbrain", src, tmp_path / "out", PrepareOptions(
            accs=("4x",), size=(16, 16), masks_root=masks, **QUIET))
    assert leftovers(tmp_path / "out") == []


def test_truncated_or_corrupt_hdf5(tmp_path, capsys):
    src = tmp_path / "knee"
    good = make_fastmri_file(src / "file1000001.h5", 1, 16, 16)
    bad = make_fastmri_file(src / "file1000002.h5", 1, 16, 16)
    bad.write_bytes(bad.read_bytes()[:1000])
    code, err = run_cli(["knee", "--src", str(src), "--out", str(tmp_path / "out")], capsys)
    assert_one_error(code, err, "file1000002.h5", "not a readable HDF5", "truncated")
    assert good.exists() and leftovers(tmp_path / "out") == []


def test_knee_missing_kspace_and_undersampled_test_file(tmp_path, capsys):
    src = tmp_path / "knee"
    make_fastmri_file(src / "file1000001.h5", 1, 16, 16)
    make_fastmri_file(src / "file1000002.h5", 1, 16, 16, with_kspace=False)
    code, err = run_cli(["knee", "--src", str(src), "--out", str(tmp_path / "out")], capsys)
    assert_one_error(code, err, "file1000002.h5", "missing key 'kspace'", "reconstruction_esc")
    src2 = tmp_path / "knee2"
    make_fastmri_file(src2 / "file1000001.h5", 1, 16, 16)
    make_fastmri_file(src2 / "singlecoil_test_v2" / "file1000009.h5", 1, 16, 16, test_file=True)
    code, err = run_cli(["knee", "--src", str(src2), "--out", str(tmp_path / "out")], capsys)
    assert_one_error(code, err, "file1000009.h5", "undersampled", "singlecoil_val")


def test_nan_in_image_and_in_kspace(tmp_path):
    src = make_mrbrains(tmp_path / "mrb", training=(1, 2), shape=(16, 16, 3))
    path = src / "TrainingData" / "2" / "T1.nii"
    img = nib.load(str(path))
    data = img.get_fdata().astype(np.float32)
    data[3, 4, 1] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(path))
    masks = make_masks(tmp_path / "masks", "mrbrain", (16, 16), accs=(4,))
    opts = PrepareOptions(accs=("4x",), size=(16, 16), masks_root=masks, **QUIET)
    with pytest.raises(DataError, match=r"TrainingData/2/T1\.nii: image contains 1 NaN.*slice 1"):
        prepare("mrbrain", src, tmp_path / "out", opts)
    assert leftovers(tmp_path / "out") == []

    knee = tmp_path / "knee"
    make_fastmri_file(knee / "file1000001.h5", 2, 16, 16)
    with h5py.File(knee / "file1000001.h5", "a") as fh:
        fh["kspace"][1, 0, 0] = np.nan
    make_masks(masks, "knee", (16, 16), accs=(4,))
    with pytest.raises(DataError, match=r"file1000001\.h5: 'kspace' contains 1 NaN.*slice 1"):
        prepare("knee", knee, tmp_path / "out",
                PrepareOptions(accs=("4x",), size=(16, 16), masks_root=masks, val_fraction=0,
                               **QUIET))


@pytest.mark.parametrize("shape", [(152, 150, 1), (150, 148, 1)], ids=["larger", "smaller"])
def test_size_mismatch_strict_is_an_error_crop_pad_fits(tmp_path, capsys, shape):
    src = make_acdc(tmp_path / "database", training=(1, 2), testing=(), shape=shape)
    out = tmp_path / "out"
    code, err = run_cli(["cardiac", "--src", str(src), "--out", str(out), "--fit", "strict",
                         "--acc", "4x"], capsys)
    assert_one_error(code, err, "patient001_frame01.nii.gz", f"{shape[:2]}", "(150, 150)",
                     "crop-pad")
    assert leftovers(out) == []
    code, err = run_cli(["cardiac", "--src", str(src), "--out", str(out), "--acc", "4x"], capsys)
    assert code == 0, err
    raw = nib.load(str(src / "training/patient001/patient001_frame01.nii.gz")).get_fdata()
    split = "train" if (out / "cardiac/train/patient001_frame01.h5").exists() else "validation"
    got = read_h5(out / "cardiac" / split / "patient001_frame01.h5")["volfs"]
    if shape[0] == 152:
        want = raw[1:151]
    else:
        want = np.zeros((150, 150, 1))
        want[:, 1:149] = raw
    np.testing.assert_allclose(got, expected_norm(want), atol=1e-6)


def test_acdc_missing_info_or_frame(tmp_path, capsys):
    src = make_acdc(tmp_path / "a", training=(1, 2), testing=(), shape=(8, 8, 1))
    (src / "training" / "patient002" / "Info.cfg").unlink()
    code, err = run_cli(["cardiac", "--src", str(src), "--out", str(tmp_path / "out")], capsys)
    assert_one_error(code, err, "patient002/Info.cfg", "ED: 1")
    src = make_acdc(tmp_path / "b", training=(1, 2), testing=(), shape=(8, 8, 1))
    (src / "training" / "patient001" / "patient001_frame03.nii.gz").unlink()
    code, err = run_cli(["cardiac", "--src", str(src), "--out", str(tmp_path / "out")], capsys)
    assert_one_error(code, err, "patient001", "missing patient001_frame03.nii.gz", "ES")


def test_option_errors(tmp_path, capsys):
    src = make_acdc(tmp_path / "a", training=(1, 2), testing=(), shape=(8, 8, 1))
    code, err = run_cli(["cardiac", "--src", str(src), "--out", str(tmp_path / "o"),
                         "--contrast", "T1"], capsys)
    assert_one_error(code, err, "--contrast applies to mrbrain only")
    code, err = run_cli(["cardiac", "--src", str(src), "--out", str(tmp_path / "o"),
                         "--size", "8", "8", "--acc", "4x"], capsys)
    assert_one_error(code, err, "mask_4x.npy", "does not match image shape (8, 8)")
    src2 = make_mrbrains(tmp_path / "m", training=(1,), shape=(8, 8, 1))
    code, err = run_cli(["mrbrain", "--src", str(src2), "--out", str(tmp_path / "o"),
                         "--contrast", "PD"], capsys)
    assert_one_error(code, err, "--contrast 'PD'", "T2_FLAIR")
    assert leftovers(tmp_path / "o") == []


def test_manifest_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    src = make_acdc(tmp_path / "database", training=(1, 2), testing=(), shape=(150, 150, 1))

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        prepare("cardiac", src, tmp_path / "out", PrepareOptions(accs=("4x",), **QUIET))
    assert leftovers(tmp_path / "out") == []


def test_python_m_kdmri_prepare_exit_status(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "kdmri", "prepare", "knee", "--src",
                           str(tmp_path / "missing"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: ") and "missing" in done.stderr
    assert "Traceback" not in done.stderr
