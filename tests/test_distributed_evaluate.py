"""`evaluate` and `pipeline` under torchrun (2 CPU processes, gloo, 1 thread each): rank 0
evaluates the whole validation set and writes once; the report equals a 1-process one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from kdmri.config import load_config
from kdmri.evaluation import evaluate

REPO = Path(__file__).resolve().parents[1]


def _torchrun(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "kdmri", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _comparable(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("versions", "git_commit")}


def test_evaluate_and_pipeline_under_torchrun(tiny_data, tmp_path):
    torch.set_num_threads(1)
    exp = tmp_path / "exp"
    config = ["--params", "ci", "--dataset", "tiny", "--data-root", str(tiny_data),
              "--experiments-root", str(exp), "--epochs", "1", "--no-progress"]
    cfg = load_config("ci", {"dataset": "tiny", "data_root": str(tiny_data),
                             "experiments_root": str(exp), "epochs": 1, "progress": False})
    out = _torchrun("evaluate", "--stage", "zf", *config)
    zf = json.loads((cfg.experiment("zf") / "report.json").read_text())
    assert zf["n_slices"] == 2 and out.count("zf: PSNR") == 2  # every slice; both ranks return it
    out = _torchrun("pipeline", *config)
    assert out.count("KD - student PSNR") == 1  # printed by rank 0 alone
    for stage in ("zf", "teacher", "student", "feature", "kd"):
        folder = cfg.experiment(stage)
        two = json.loads((folder / "report.json").read_text())
        assert two["n_slices"] == 2, stage
        assert len((folder / "metrics.csv").read_text().splitlines()) == 1 + 2, stage
        one = evaluate(cfg, stage)  # one process, same checkpoint
        assert _comparable(two) == _comparable(one), stage
    assert not list(exp.rglob("*.tmp"))
