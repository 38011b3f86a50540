"""Outputs never replace an input: `reconstruct` and `export` refuse an --out that is one of
their inputs (also through a symbolic or hard link) and replace an existing file only with
--force; `evaluate --checkpoint` never writes into a trained stage's folder."""

from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import smooth_volume

from kdmri.checkpoint import BEST, LAST, load_checkpoint
from kdmri.evaluation import evaluate
from kdmri.tools.cli import main
from kdmri.training import train


@pytest.fixture
def trained(tiny_cfg):
    """Teacher and student trained for one epoch on the tiny data; the student evaluated."""
    torch.set_num_threads(1)
    cfg = tiny_cfg.replace(epochs=1)
    teacher, student = train(cfg, "teacher"), train(cfg, "student")
    evaluate(cfg, "student")
    return cfg, teacher, student


def _error(capsys, *needles) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_reconstruct_never_replaces_its_input_and_needs_force(trained, tmp_path, capsys):
    _, _, student = trained
    ckpt = student / BEST
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(smooth_volume((32, 24, 3), 5), np.eye(4)), str(scan))
    original = scan.read_bytes()
    run = ["reconstruct", "--checkpoint", str(ckpt), "--input", str(scan)]
    link, hard = tmp_path / "link.nii.gz", tmp_path / "hard.nii.gz"
    link.symlink_to(scan)
    os.link(scan, hard)
    for out in (scan, link, hard):
        assert main([*run, "--out", str(out), "--force"]) == 2
        _error(capsys, f"--out {out}", f"--input {scan}")
    assert scan.read_bytes() == original and not (tmp_path / "scan.png").exists()
    # an existing output, or preview, is replaced only with --force
    out = tmp_path / "recon.nii.gz"
    assert main([*run, "--out", str(out)]) == 0
    first = out.read_bytes()
    (tmp_path / "recon.png").write_bytes(b"mine")
    assert main([*run, "--out", str(out)]) == 2
    _error(capsys, str(out), "--force")
    out.unlink()
    assert main([*run, "--out", str(out)]) == 2
    _error(capsys, str(tmp_path / "recon.png"), "--force")
    assert (tmp_path / "recon.png").read_bytes() == b"mine" and not out.exists()
    assert main([*run, "--out", str(out), "--force"]) == 0
    assert out.read_bytes() == first and (tmp_path / "recon.png").read_bytes() != b"mine"


def test_export_never_replaces_the_checkpoint_and_needs_force(trained, tmp_path, capsys):
    _, _, student = trained
    ckpt = tmp_path / "student.pt"
    shutil.copy(student / BEST, ckpt)
    original = ckpt.read_bytes()
    run = ["export", "--checkpoint", str(ckpt), "--format", "torchscript"]
    link = tmp_path / "link.pt"
    link.symlink_to(ckpt)
    for out in (ckpt, link):
        assert main([*run, "--out", str(out), "--force"]) == 2
        _error(capsys, f"--out {out}", f"--checkpoint {ckpt}")
    assert ckpt.read_bytes() == original and load_checkpoint(ckpt)["model"]
    out = tmp_path / "student.ts"
    out.write_bytes(b"mine")
    assert main([*run, "--out", str(out)]) == 2
    _error(capsys, str(out), "--force")
    assert out.read_bytes() == b"mine"
    assert main([*run, "--out", str(out), "--force"]) == 0
    assert out.read_bytes() != b"mine"


def test_evaluate_checkpoint_never_writes_into_a_trained_stage(trained, tmp_path, capsys):
    cfg, teacher, student = trained
    before = _files(student)
    config = ["--dataset", "tiny", "--acc", "4x", "--data-root", str(cfg.data_root),
              "--experiments-root", str(cfg.experiments_root), "--batch-size", "2", "--no-progress"]
    run = ["evaluate", "--stage", "student", *config]
    # the teacher's checkpoint as the student stage: beside it is the teacher's training folder
    assert main([*run, "--checkpoint", str(teacher / BEST)]) == 2
    _error(capsys, str(teacher), "--out")
    # another checkpoint of the student's own folder
    assert main([*run, "--checkpoint", str(student / LAST)]) == 2
    _error(capsys, str(student), "--out")
    assert _files(student) == before and not (teacher / "report.json").exists()
    # into a folder it names
    out = tmp_path / "teacher-as-student"
    assert main([*run, "--checkpoint", str(teacher / BEST), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["role"] == "student" and report["parameters"] > json.loads(
        before["report.json"])["parameters"]  # the teacher's network
    # beside a checkpoint outside any training folder
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(student / LAST, alone / "last.pt")
    assert main([*run, "--checkpoint", str(alone / "last.pt")]) == 0
    assert {"report.json", "metrics.csv", "MODEL_CARD.md"} <= set(_files(alone))
    assert _files(student) == before
    # the stage's own best checkpoint, named, is the default evaluation
    assert main([*run, "--checkpoint", str(student / BEST)]) == 0
    again = json.loads((student / "report.json").read_text())
    assert again["metrics"] == json.loads(before["report.json"])["metrics"]
