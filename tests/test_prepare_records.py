"""Re-runs of ``prepare`` on folders in each dataset's real layout (``examples.py``): what a
volume was made from decides whether it is finished; broken links; signals; the lock;
staging folders of other hosts; the recorded fit; the printed output path."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from kdmri.datasets import PrepareOptions, prepare, split_subjects, staging
from kdmri.datasets.convert import lock_folder
from kdmri.datasets.examples import make_example_source
from kdmri.datasets.records import RECORD_ATTR
from kdmri.errors import DataError
from kdmri.locks import folder_lock
from kdmri.paths import mask_path
from kdmri.tools.cli import main

QUIET = {"progress": False}
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` and its bytes, the lock file (no data) aside."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".locks" not in p.relative_to(root).parts}


def visible(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name != ".locks")


def one_error_line(err: str, *needles: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def record(path: Path) -> dict:
    with h5py.File(path, "r") as fh:
        return json.loads(fh.attrs[RECORD_ATTR])


# ----------------------------------------------------------------------------- a: settings


def test_first_run_killed_before_its_manifest_then_another_percentile_is_refused(tmp_path,
                                                                               capsys):
    src = make_example_source("cardiac", tmp_path / "acdc", n_subjects=3, n_slices=2)
    out = tmp_path / "out"
    prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
    (out / "cardiac" / "manifest.json").unlink()  # what a run killed before its manifest leaves
    before = snapshot(out)
    assert len(before) == 6
    args = ["prepare", "cardiac", "--src", str(src), "--out", str(out), "--acc", "4x", "--quiet"]
    assert main([*args, "--percentile", "99.5"]) == 2
    one_error_line(capsys.readouterr().err, ".h5: already prepared differently",
                   "percentile 100.0 -> 99.5", "(6 such volume(s))", "--overwrite")
    assert snapshot(out) == before
    # what the record holds: the settings, the masks' and the sources' identities
    some = next((out / "cardiac").rglob("*.h5"))
    rec = record(some)
    assert rec["percentile"] == 100.0 and rec["size"] == [150, 150]
    assert rec["fit_applied"] == "crop-pad"
    assert rec["masks"] == {"4x": hashlib.sha256(
        mask_path("cardiac", "4x").read_bytes()).hexdigest()}
    (source,) = rec["sources"]
    assert source["sha256"] == hashlib.sha256((src / source["path"]).read_bytes()).hexdigest()
    assert source["bytes"] == (src / source["path"]).stat().st_size
    # a volume without a record (an older kdmri) is not taken as finished either
    with h5py.File(some, "a") as fh:
        del fh.attrs[RECORD_ATTR]
    with pytest.raises(DataError, match=rf"{some.name}: already prepared differently: no "
                                        r"conversion record"):
        prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
    # --overwrite rebuilds every volume with the new setting
    assert main([*args, "--percentile", "99.5", "--overwrite"]) == 0
    files = sorted((out / "cardiac").rglob("*.h5"))
    assert len(files) == 6
    for path in files:
        assert record(path)["percentile"] == 99.5
        with h5py.File(path) as fh:
            assert fh.attrs["normalisation_percentile"] == 99.5
    manifest = json.loads((out / "cardiac" / "manifest.json").read_text())
    assert manifest["settings"]["normalisation"]["divide_by_percentile"] == 99.5
    assert all(e["status"] == "written" for e in manifest["volumes"])


# ----------------------------------------------------------------------------- b: sources


def test_another_download_with_the_same_names_is_refused_a_copy_is_recognised(tmp_path,
                                                                             capsys):
    first = make_example_source("knee", tmp_path / "first", n_subjects=2, n_slices=1)
    second = make_example_source("knee", tmp_path / "second", n_subjects=2, n_slices=1)
    names = sorted(p.relative_to(second) for p in second.rglob("*.h5"))
    for rel in names:  # another download: same names, same sizes, other content
        with h5py.File(second / rel, "a") as fh:
            fh["kspace"][...] = fh["kspace"][()][:, :, ::-1]
        assert (second / rel).stat().st_size == (first / rel).stat().st_size
    out = tmp_path / "out"
    opts = PrepareOptions(accs=("4x",), **QUIET)
    prepare("knee", first, out, opts)
    before = snapshot(out)
    code = main(["prepare", "knee", "--src", str(second), "--out", str(out), "--acc", "4x",
                 "--quiet"])
    assert code == 2
    one_error_line(capsys.readouterr().err, "file1000001.h5: already prepared differently",
                   "source singlecoil_train/file1000001.h5 changed (same size, different "
                   "content)", "(2 such volume(s))")
    assert snapshot(out) == before
    # the same bytes copied elsewhere (new mtimes) are recognised through their SHA-256
    copy = tmp_path / "copy"
    shutil.copytree(first, copy, copy_function=shutil.copy)
    assert all((copy / r).stat().st_mtime_ns != (first / r).stat().st_mtime_ns for r in names)
    report = prepare("knee", copy, out, opts)
    assert report.written == [] and len(report.skipped) == 2
    # a source of another size is named with both sizes
    with h5py.File(copy / names[0], "a") as fh:
        fh.attrs["extra"] = "x" * 5000
    with pytest.raises(DataError, match=r"file1000001\.h5 changed \(\d+ -> \d+ bytes\)"):
        prepare("knee", copy, out, opts)
    # --overwrite converts the new download: the data are the new source's
    prepare("knee", second, out, PrepareOptions(accs=("4x",), overwrite=True, **QUIET))
    fresh = tmp_path / "fresh"
    prepare("knee", second, fresh, opts)
    for path in sorted((fresh / "knee").rglob("*.h5")):
        rel = path.relative_to(fresh)
        with h5py.File(path) as want, h5py.File(out / rel) as got:
            np.testing.assert_array_equal(got["volfs"][()], want["volfs"][()])
    manifest = json.loads((out / "knee" / "manifest.json").read_text())
    assert manifest["source_folder"] == str(second.resolve())


# ----------------------------------------------------------------------------- c: links


@pytest.mark.parametrize("dataset, link, target, needle", [
    ("knee", "singlecoil_train/file1000009.h5", "missing.h5", "points to missing.h5"),
    ("calgary", "Original/CC0009_ge_3_38_M.nii.gz", "CC0009_ge_3_38_M.nii.gz", "loops"),
    ("mrbrain", "TrainingData/3", "/nonexistent/subject3", "does not exist"),
    ("calgary", "Original/back", ".", "loops (it points to ., a folder above it)"),
], ids=["knee-dangling", "calgary-loop", "mrbrain-dangling-folder", "calgary-folder-loop"])
def test_a_broken_or_looping_link_is_an_error_naming_it(tmp_path, capsys, dataset, link,
                                                         target, needle):
    src = make_example_source(dataset, tmp_path / "src", n_subjects=2, n_slices=1)
    (src / link).symlink_to(target)
    out = tmp_path / "out"
    code = main(["prepare", dataset, "--src", str(src), "--out", str(out), "--quiet"])
    assert code == 2
    one_error_line(capsys.readouterr().err, str(src / link), "broken symbolic link", needle)
    assert not out.exists()


def test_links_to_files_and_folders_are_followed(tmp_path):
    src = make_example_source("cardiac", tmp_path / "acdc", n_subjects=3, n_slices=1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (src / "training" / "patient002").rename(elsewhere / "patient002")
    (src / "training" / "patient002").symlink_to(elsewhere / "patient002")
    frame = src / "training" / "patient001" / "patient001_frame01.nii.gz"
    frame.rename(elsewhere / frame.name)
    frame.symlink_to(elsewhere / frame.name)
    report = prepare("cardiac", src, tmp_path / "out", PrepareOptions(accs=("4x",), **QUIET))
    assert len(report.written) == 6


# ----------------------------------------------------------------------------- signals

WRAPPER = r'''
import os, signal, sys, time
from pathlib import Path

import kdmri.datasets.convert as convert

ready, sent, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
real, calls = convert.write_volume, []


class SignalsInDestructor:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # a KeyboardInterrupt here is "ignored"


def slow_write(*args, **kwargs):
    out = real(*args, **kwargs)
    calls.append(args[0])
    if len(calls) == 2:  # part-way: two of six volumes written
        if how == "destructor":
            SignalsInDestructor()
        else:
            ready.write_text("ready")
            deadline = time.monotonic() + 60
            while not sent.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
    return out


convert.write_volume = slow_write
'''

# `python -m kdmri prepare ...` without importing every other command (start-up in seconds)
PREPARE = r'''
import argparse, sys
from kdmri.datasets import register_cli
parser = argparse.ArgumentParser()
register_cli(parser.add_subparsers(required=True))
args = parser.parse_args(sys.argv[sys.argv.index("prepare"):])
sys.exit(args.func(args))
'''


@pytest.mark.parametrize("signame, how, earlier", [
    ("SIGTERM", "external", "none"),
    ("SIGINT", "external", "dataset"),
    ("SIGINT", "destructor", "none"),
], ids=["sigterm-first-run", "sigint-overwrite", "sigint-in-a-destructor"])
def test_a_signal_ends_the_run_cleanly_with_the_earlier_state_intact(tmp_path, signame, how,
                                                                     earlier):
    src = make_example_source("cardiac", tmp_path / "acdc", n_subjects=3, n_slices=1)
    out = tmp_path / "out"
    args = ["prepare", "cardiac", "--src", str(src), "--out", str(out), "--acc", "4x", "--quiet"]
    if earlier == "dataset":
        prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
        args += ["--overwrite", "--seed", "5"]
    before = snapshot(out)
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER + PREPARE)
    ready, sent = tmp_path / "ready", tmp_path / "sent"
    proc = subprocess.Popen([sys.executable, str(script), str(ready), str(sent), how, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    if how == "external":
        deadline = time.monotonic() + 120
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists(), proc.communicate(timeout=60)
        proc.send_signal(getattr(signal, signame))
        sent.write_text("sent")
    stdout, stderr = proc.communicate(timeout=120)
    signum = getattr(signal, signame)
    assert proc.returncode == 128 + signum, (proc.returncode, stdout, stderr)
    one_error_line(stderr, "prepare cardiac into", f"interrupted by {signame}",
                   "the output is as it was before this run")
    assert "wrote" not in stdout
    assert snapshot(out) == before  # no volume, no .tmp, no manifest, no staging copy
    assert visible(out) == (["cardiac"] if earlier == "dataset" else [])


# ----------------------------------------------------------------------------- lock, staging


def test_prepare_waits_for_the_lock_on_its_output(tmp_path):
    src = make_example_source("cardiac", tmp_path / "acdc", n_subjects=2, n_slices=1)
    out = tmp_path / "out"
    log = tmp_path / "stderr.txt"
    with folder_lock(lock_folder(out, "cardiac")), open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", PREPARE, "prepare", "cardiac", "--src",
                                 str(src), "--out", str(out), "--acc", "4x", "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=err, env=ENV)
        deadline = time.monotonic() + 120
        while "waiting for" not in log.read_text() and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "waiting for" in log.read_text() and "prepare cardiac" in log.read_text()
        assert proc.poll() is None and not (out / "cardiac").exists()
    assert proc.wait(timeout=120) == 0, log.read_text()
    assert (out / "cardiac" / "manifest.json").is_file()


def test_only_this_hosts_staging_folders_of_dead_processes_are_cleaned(tmp_path, monkeypatch):
    src = make_example_source("cardiac", tmp_path / "acdc", n_subjects=2, n_slices=1)
    out = tmp_path / "out"
    prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    host = staging.host_tag()
    keep = [f"cardiac.partial-otherhost-{dead}", f"cardiac.partial-{dead}",
            f"cardiac.partial-{host}-{os.getppid()}", f"cardiac.old-otherhost-{dead}"]
    gone = [f"cardiac.partial-{host}-{dead}", f"cardiac.old-{host}-{dead}"]
    for name in keep + gone:
        (out / name / "train").mkdir(parents=True)
        (out / name / "train" / "x.h5").write_bytes(b"another run's")
    targets = []
    real = staging.link_or_copy
    monkeypatch.setattr(staging, "link_or_copy", lambda a, b: (targets.append(b), real(a, b)))
    report = prepare("cardiac", src, out, PrepareOptions(accs=("4x",), overwrite=True, **QUIET))
    assert len(report.written) == 4
    assert visible(out) == sorted(["cardiac", *keep])
    assert all((out / name / "train" / "x.h5").read_bytes() == b"another run's" for name in keep)
    # this run staged in <dataset>.partial-<host>-<pid>
    assert staging.stage_folder(tmp_path, "x").name == f"x.partial-{host}-{os.getpid()}"
    # the dataset missing and another host's copy of it beside: that host may be swapping it
    shutil.rmtree(out / "cardiac")
    with pytest.raises(DataError, match=rf"cardiac\.old-otherhost-{dead}: .*belongs to process "
                                        rf"{dead} on host otherhost"):
        prepare("cardiac", src, out, PrepareOptions(accs=("4x",), **QUIET))
    assert visible(out) == sorted(keep)


# ----------------------------------------------------------------------------- smaller points


def test_manifest_records_the_requested_and_the_applied_fit(tmp_path):
    src = make_example_source("calgary", tmp_path / "cc", n_subjects=2, n_slices=1)
    out = tmp_path / "out"
    prepare("calgary", src, out, PrepareOptions(accs=("4x",), **QUIET))
    settings = json.loads((out / "calgary" / "manifest.json").read_text())["settings"]
    assert settings["fit"] == "auto" and settings["fit_applied"] == "crop-pad"
    # crop-pad writes the same pixels: a re-run with it finds every volume finished
    report = prepare("calgary", src, out, PrepareOptions(accs=("4x",), fit="crop-pad", **QUIET))
    assert report.written == [] and len(report.skipped) == 2
    settings = json.loads((out / "calgary" / "manifest.json").read_text())["settings"]
    assert settings["fit"] == "crop-pad" and settings["fit_applied"] == "crop-pad"
    with pytest.raises(DataError, match=r"different settings \(fit_applied\)"):
        prepare("calgary", src, out, PrepareOptions(accs=("4x",), fit="strict", **QUIET))


def test_val_fraction_zero_and_one_put_every_subject_in_one_split(tmp_path):
    assert set(split_subjects(["a", "b", "c"], 0.0, seed=0).values()) == {"train"}
    assert set(split_subjects(["a", "b", "c"], 1.0, seed=0).values()) == {"validation"}
    assert list(split_subjects(["a", "b", "c"], 0.01, seed=0).values()).count("validation") == 1
    src = make_example_source("calgary", tmp_path / "cc", n_subjects=2, n_slices=1)
    report = prepare("calgary", src, tmp_path / "out",
                     PrepareOptions(accs=("4x",), val_fraction=0.0, **QUIET))
    assert report.subjects == {"train": 2, "validation": 0}


def test_relative_out_is_printed_as_an_absolute_path_with_its_data_root(tmp_path, monkeypatch,
                                                                        capsys):
    make_example_source("calgary", tmp_path / "cc", n_subjects=2, n_slices=1)
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "calgary", "--src", "cc", "--out", "converted", "--acc", "4x",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    root = (tmp_path / "converted" / "calgary").resolve()
    assert root.is_dir()
    assert f"-> {root}\n" in printed
    assert f"params: set data_root: {root} " in printed
    assert f"manifest: {root / 'manifest.json'}" in printed
