"""The dataset registry, a new dataset from one file, overwrite safety and layout checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from prepare_fixtures import (
    make_acdc,
    make_calgary_file,
    make_fastmri_file,
    make_masks,
    make_mrbrains,
)

from kdmri.data import write_volume
from kdmri.datasets import (
    DatasetSpec,
    PrepareOptions,
    SourceVolume,
    convert,
    dataset_names,
    get_dataset,
    paper_label,
    prepare,
    register_dataset,
    staging,
    unregister_dataset,
)
from kdmri.datasets.examples import make_example_source
from kdmri.errors import ConfigError, DataError
from kdmri.physics.masks import DATASET_SHAPES, make_dataset_masks
from kdmri.tools.cli import main

QUIET = {"progress": False}


# ----------------------------------------------------------------------------- registry


def test_specs_agree_with_mask_shapes_and_labels():
    assert dataset_names(convertible=True) == ["calgary", "cardiac", "knee", "mrbrain"]
    assert "demo" in dataset_names() and get_dataset("demo").build is not None
    for name in dataset_names():
        spec = get_dataset(name)
        assert DATASET_SHAPES[name] == spec.shape, name
        assert spec.module == f"kdmri.datasets.{Path(spec.module).suffix[1:]}"
    assert set(DATASET_SHAPES) == set(dataset_names())
    assert [paper_label(n) for n in ("cardiac", "mrbrain", "knee")] == ["Cardiac", "Brain", "Knee"]
    assert get_dataset("calgary").official_split is None
    assert get_dataset("knee").official_split["singlecoil_val"] == "validation"
    with pytest.raises(ConfigError, match=r"dataset 'brats': expected one of \['calgary'"):
        get_dataset("brats")
    with pytest.raises(ConfigError, match="mask shape"):  # a known name keeps its mask size
        register_dataset(DatasetSpec(name="knee", shape=(320, 320), label="K", title="t"),
                         replace=True)
    assert get_dataset("knee").shape == (640, 368)
    with pytest.raises(ConfigError, match="not converted from a download"):
        prepare("demo", ".", None)


# ----------------------------------------------------------------------------- a new dataset
# Everything a new dataset needs, written here as it would be in kdmri/datasets/toy.py.

TOY_OFFICIAL = {"train": "train", "val": "validation"}


def toy_write_example(folder: Path, n_subjects: int, n_slices: int) -> None:
    """``<train|val>/subjectN.npy`` arrays (26, 20, slices): 2 rows more than the target."""
    rng = np.random.default_rng(0)
    for k in range(n_subjects):
        path = folder / ("val" if k == n_subjects - 1 else "train") / f"subject{k}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, rng.random((26, 20, n_slices)) * 100 + k)


def toy_discover(src: Path, options: PrepareOptions) -> list[SourceVolume]:
    volumes = []
    for path in sorted(src.rglob("*.npy")):
        shape = tuple(np.load(path, mmap_mode="r").shape)
        volumes.append(SourceVolume(
            name=path.stem, subject=path.stem, sources=(path,), shape=shape,
            load=lambda path=path: np.load(path), official_split=TOY_OFFICIAL.get(path.parent.name)))
    if not volumes:
        raise DataError(f"{src}: no .npy volumes")
    return volumes


TOY = DatasetSpec(name="toy", shape=(24, 20), label="Toy", title="toy .npy volumes",
                  discover=toy_discover, write_example=toy_write_example,
                  official_split=TOY_OFFICIAL, module=__name__)


@pytest.fixture
def toy():
    register_dataset(TOY)
    try:
        yield TOY
    finally:
        unregister_dataset(TOY.name)


def test_a_new_dataset_is_one_spec(toy, tmp_path, capsys):
    masks = tmp_path / "masks"
    make_dataset_masks(["toy"], accs=(4,), root=masks)  # the registry told masks its size
    src = make_example_source("toy", tmp_path / "download", n_subjects=3, n_slices=2)
    report = prepare("toy", src, tmp_path / "out", PrepareOptions(
        accs=("4x",), masks_root=masks, split="official", **QUIET))
    assert report.volumes == {"train": 2, "validation": 1}
    raw = np.load(src / "val" / "subject2.npy")
    with h5py.File(tmp_path / "out/toy/validation/subject2.h5") as fh:
        volfs = fh["volfs"][()]
        assert fh["kspace_volus_4x"].shape == (24, 20, 2)
    np.testing.assert_allclose(volfs, raw[1:25] / raw[1:25].max(), atol=1e-6)
    code = main(["prepare", "toy", "--src", str(src), "--out", str(tmp_path / "cli"), "--acc",
                 "4x", "--masks-root", str(masks), "--quiet"])
    assert code == 0 and "toy: wrote 3 volume(s)" in capsys.readouterr().out
    unregister_dataset("toy")
    assert "toy" not in DATASET_SHAPES and "toy" not in dataset_names()


# ----------------------------------------------------------------------------- overwrite


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` and its bytes (the lock file, which holds no data, aside)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".locks" not in p.relative_to(root).parts}


def visible(out: Path) -> list[str]:
    """Names in ``out`` but the conversion's lock folder ``.locks``."""
    return sorted(p.name for p in out.iterdir() if p.name != ".locks")


def truncate(path: Path) -> None:
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])


def test_failed_overwrite_leaves_the_old_dataset_byte_identical(tmp_path, monkeypatch):
    src = make_acdc(tmp_path / "database", training=(1, 2, 3), testing=(), shape=(150, 150, 2))
    out = tmp_path / "out"
    prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
    before = snapshot(out)
    assert len([k for k in before if k.endswith(".h5")]) == 6
    last = src / "training/patient003/patient003_frame03.nii.gz"  # converted last
    blob, stat = last.read_bytes(), last.stat()
    truncate(last)
    with pytest.raises(DataError, match="truncated"):
        prepare("cardiac", src, out, PrepareOptions(accs=("4x",), seed=5, overwrite=True, **QUIET))
    assert snapshot(out) == before  # and no cardiac.partial-* / cardiac.old-* left
    # without --overwrite the changed source is refused before anything is written
    with pytest.raises(DataError, match=r"patient003_frame03\.h5: already prepared differently: "
                                        r"source .*patient003_frame03\.nii\.gz changed"):
        prepare("cardiac", src, out, PrepareOptions(accs=("4x", "8x"), **QUIET))
    assert snapshot(out) == before
    # a re-run that must rewrite existing volumes (a new acceleration) is staged as well
    last.write_bytes(blob)
    os.utime(last, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    calls = []

    def failing_write(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 6:
            raise DataError(f"{path}: disk full")
        return write_volume(path, *args, **kwargs)

    monkeypatch.setattr(convert, "write_volume", failing_write)
    with pytest.raises(DataError, match="disk full"):
        prepare("cardiac", src, out, PrepareOptions(accs=("4x", "8x"), **QUIET))
    monkeypatch.undo()
    assert len(calls) == 6 and all(".partial-" in str(p) for p in calls)
    assert snapshot(out) == before
    # a successful overwrite swaps the new dataset in and leaves nothing beside it
    good = make_acdc(tmp_path / "database2", training=(1, 2, 3), testing=(), shape=(150, 150, 2))
    prepare("cardiac", good, out, PrepareOptions(accs=("4x", "8x"), overwrite=True, **QUIET))
    after = snapshot(out)
    assert visible(out) == ["cardiac"]
    assert after.keys() == before.keys() and after != before
    with h5py.File(next((out / "cardiac").rglob("*.h5"))) as fh:
        assert "img_volus_8x" in fh


def test_overwrite_refuses_to_delete_foreign_files(tmp_path):
    src = make_acdc(tmp_path / "database", training=(1, 2), testing=(), shape=(150, 150, 1))
    out = tmp_path / "out"
    prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
    (out / "cardiac" / "my_notes.txt").write_text("keep me")
    before = snapshot(out)
    with pytest.raises(DataError, match=r"my_notes\.txt.*would delete it"):
        prepare("cardiac", src, out, PrepareOptions(accs=("4x",), overwrite=True, **QUIET))
    assert snapshot(out) == before


def test_an_interrupted_swap_is_undone(tmp_path):
    src = make_acdc(tmp_path / "database", training=(1, 2), testing=(), shape=(150, 150, 1))
    out = tmp_path / "out"
    prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
    before = snapshot(out / "cardiac")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = staging.host_tag()
    (out / "cardiac").rename(out / f"cardiac.old-{host}-{dead}")  # killed between the renames
    (out / f"cardiac.partial-{host}-{dead}" / "train").mkdir(parents=True)
    report = prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
    assert report.written == [] and len(report.skipped) == 4  # the old dataset came back
    assert visible(out) == ["cardiac"]
    assert {k: v for k, v in snapshot(out / "cardiac").items() if k.endswith(".h5")} == \
        {k: v for k, v in before.items() if k.endswith(".h5")}


# ----------------------------------------------------------------------------- shapes, splits


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(["prepare", *args, "--quiet"])
    return code, capsys.readouterr().err


def test_calgary_stored_slices_last_is_refused(tmp_path, capsys):
    src = tmp_path / "cc"
    bad = make_calgary_file(src / "Original", "CC0001_philips_15_55_M", shape=(256, 256, 6))
    make_calgary_file(src / "Original", "CC0002_philips_15_56_M", shape=(2, 256, 256), seed=1)
    code, err = run_cli(["calgary", "--src", str(src), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.startswith("error: ") and bad.name in err
    for needle in ("256 x 6", "(slices, 256, 256)", "--fit crop-pad"):
        assert needle in err, (needle, err)
    assert not (tmp_path / "out").exists()


def test_knee_rows_must_be_the_readout_length(tmp_path, capsys):
    src = tmp_path / "knee"
    make_fastmri_file(src / "file1000001.h5", slices=1, height=320, width=368)
    make_fastmri_file(src / "file1000002.h5", slices=1, height=640, width=368, seed=1)
    code, err = run_cli(["knee", "--src", str(src), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "file1000001.h5: 'kspace' has 320 readout rows" in err
    assert "(slices, 640, W)" in err and not (tmp_path / "out").exists()
    # asked for explicitly, the odd shape is cropped / padded
    small = tmp_path / "small"
    for n in range(2):
        make_fastmri_file(small / f"file100000{n}.h5", slices=1, height=30, width=26, seed=n)
    masks = make_masks(tmp_path / "masks", "knee", (32, 24), accs=(4,))
    args = ["knee", "--src", str(small), "--out", str(tmp_path / "out2"), "--acc", "4x",
            "--size", "32", "24", "--masks-root", str(masks)]
    code, err = run_cli(args, capsys)
    assert code == 2 and "30 readout rows" in err
    code, err = run_cli([*args, "--fit", "crop-pad"], capsys)
    assert code == 0, err
    with h5py.File(next((tmp_path / "out2/knee").rglob("*.h5"))) as fh:
        assert fh["volfs"].shape == (32, 24, 1) and fh.attrs["fit"] == "crop+pad"


def test_empty_official_split_names_the_split_and_what_was_found(tmp_path):
    src = make_mrbrains(tmp_path / "mrb", training=(1, 2), shape=(16, 16, 1))
    masks = make_masks(tmp_path / "masks", "mrbrain", (16, 16), accs=(4,))
    opts = PrepareOptions(accs=("4x",), size=(16, 16), masks_root=masks, split="official", **QUIET)
    with pytest.raises(DataError, match=r"'validation' split of mrbrain is empty \(its folder "
                                        r"TestData/ holds no volume\); found 2 volume\(s\), all "
                                        r"in TrainingData/"):
        prepare("mrbrain", src, tmp_path / "out", opts)
    assert not (tmp_path / "out").exists()
