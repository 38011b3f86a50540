"""A write interrupted midway leaves no half-written file: ``train()`` and ``evaluate()``
are interrupted inside a write (the writer puts partial bytes down, then raises) and every
final file is either absent or byte-identical to its previous complete version."""

from __future__ import annotations

import csv
import json
import pathlib

import pytest
import torch

from kdmri.checkpoint import BEST, LAST, load_checkpoint
from kdmri.evaluation import evaluate
from kdmri.training import train


class Interrupted(RuntimeError):
    pass


def _snapshot(folder: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _no_partial_files(folder: pathlib.Path, before: dict[str, bytes], allowed_new=()) -> None:
    assert not list(folder.rglob("*.tmp")), "a temporary file was left behind"
    after = _snapshot(folder)
    for name, data in after.items():
        if name in before and name not in allowed_new:
            assert data == before[name], f"{name} changed after an interrupted write"


def _break_torch_save(monkeypatch, fail_on_call: int) -> list:
    """``torch.save`` writes its first bytes, then raises on call number ``fail_on_call``."""
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) < fail_on_call:
            return real(obj, f, *args, **kwargs)
        if isinstance(f, (str, pathlib.Path)):
            pathlib.Path(f).write_bytes(b"PK\x03\x04 partial")
        else:
            f.write(b"PK\x03\x04 partial")
        raise Interrupted("killed mid-write")

    monkeypatch.setattr(torch, "save", save)
    return calls


@pytest.mark.parametrize("fail_on_call", [1, 2])
def test_train_interrupted_while_saving_a_checkpoint(tiny_cfg, monkeypatch, fail_on_call):
    cfg = tiny_cfg.replace(epochs=1)
    out = train(cfg, "student")
    before = _snapshot(out)
    assert {BEST, LAST, "train_log.csv"} <= set(before)

    more = cfg.replace(epochs=2)
    calls = _break_torch_save(monkeypatch, fail_on_call)
    with pytest.raises(Interrupted):
        train(more, "student")
    assert len(calls) == fail_on_call
    monkeypatch.undo()
    # config.yaml is rewritten (epochs=2) before training. torch.save call 1 is best_model.pt
    # (the validation loss improved) or model.pt; call 2 is model.pt
    # after a successful best_model.pt: that one is a complete new version
    new = (BEST,) if fail_on_call == 2 else ()
    _no_partial_files(out, before, allowed_new=(*new, "config.yaml"))
    assert load_checkpoint(out / LAST)["epoch"] == 1
    assert load_checkpoint(out / BEST)["epoch"] == (2 if new else 1)
    # the run resumes from the intact model.pt and completes
    train(more, "student")
    assert load_checkpoint(out / LAST)["epoch"] == 2


def _break_csv_rows(monkeypatch) -> None:
    real = csv.DictWriter.writerows

    def writerows(self, rows):
        rows = list(rows)
        real(self, rows[:1])
        raise Interrupted("killed mid-write")

    monkeypatch.setattr(csv.DictWriter, "writerows", writerows)


def test_train_interrupted_while_writing_the_log(tiny_cfg, monkeypatch):
    cfg = tiny_cfg.replace(epochs=1)
    out = train(cfg, "student")
    before = _snapshot(out)
    _break_csv_rows(monkeypatch)
    with pytest.raises(Interrupted):
        train(cfg.replace(epochs=2), "student")
    monkeypatch.undo()
    # the checkpoints of epoch 2 were complete before the log write: they may be new
    _no_partial_files(out, before, allowed_new=(BEST, LAST, "config.yaml"))
    assert (out / "train_log.csv").read_bytes() == before["train_log.csv"]


def test_evaluate_interrupted_while_writing_report_and_metrics(tiny_cfg, monkeypatch):
    out = train(tiny_cfg.replace(epochs=1), "student")
    report = evaluate(tiny_cfg, "student")
    before = _snapshot(out)
    assert json.loads(before["report.json"]) == report

    real = pathlib.Path.write_text

    def write_text(self, data, *args, **kwargs):
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise Interrupted("killed mid-write")

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    with pytest.raises(Interrupted):
        evaluate(tiny_cfg, "student")
    monkeypatch.undo()
    _no_partial_files(out, before)
    assert json.loads((out / "report.json").read_text()) == report

    _break_csv_rows(monkeypatch)
    with pytest.raises(Interrupted):
        evaluate(tiny_cfg, "student")
    monkeypatch.undo()
    _no_partial_files(out, before)
    assert (out / "metrics.csv").read_bytes() == before["metrics.csv"]
    assert not list((out / "results").glob("*.tmp"))


WRITER = """
import sys
import time
from pathlib import Path

from kdmri.io import atomic_text

path, me, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
for i in range(300):
    atomic_text(path, f"{me} {i} " + me * 20000 + " end\\n")
"""


def test_two_processes_writing_one_file_at_once(tmp_path):
    """Two processes (two batches sharing --out) rewrite one file 300 times each at once:
    no error, the final file is one complete version, and no temporary file is left."""
    import os
    import subprocess
    import sys

    target, go = tmp_path / "runs" / "summary.md", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(pathlib.Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(target), me, str(go)], env=env,
                              stderr=subprocess.PIPE, text=True) for me in "ab"]
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    me, i, body, end = target.read_text().split(" ")
    assert me in "ab" and 0 <= int(i) < 300 and body == me * 20000 and end == "end\n"
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"
