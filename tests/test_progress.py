"""Progress bars: live interactively, the job log in batch-executed notebooks (kdmri.progress)."""

import os
import subprocess
import sys

import nbformat
import pytest

from kdmri.progress import PROGRESS_LOG_ENV, progress_bar
from kdmri.tools.cli import main
from kdmri.training.engine import train


def test_bar_writes_lines_to_the_log_and_nothing_to_the_terminal(tmp_path, monkeypatch, capsys):
    log = tmp_path / "job.log"
    monkeypatch.setenv(PROGRESS_LOG_ENV, str(log))
    bar = progress_bar(desc="epochs", total=3, per_update=True)
    for _ in range(3):
        bar.update(1)
    bar.close()
    for _ in progress_bar(range(5), desc="batches"):
        pass
    assert progress_bar(range(2), desc="hidden", enabled=False).disable
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    lines = log.read_text().splitlines()
    assert [ln for ln in lines if "epochs" in ln and "3/3" in ln] and [ln for ln in lines if "batches" in ln]
    assert all(ln.startswith("[") and "\r" not in ln for ln in lines)
    assert not [ln for ln in lines if "hidden" in ln]
    assert len([ln for ln in lines if "epochs" in ln]) <= 5  # one per update (and the last state again)


def test_the_log_bar_is_written_in_a_kernel_whose_tqdm_is_disabled(tmp_path):
    """Batch-executed kernels start with TQDM_DISABLE=1 (for other libraries' bars), which
    tqdm reads when it is imported."""
    log = tmp_path / "job.log"
    code = ("from kdmri.progress import progress_bar\n"
            "bar = progress_bar(desc='stage', total=2, initial=1, per_update=True)\n"
            "bar.update(1)\nbar.close()\n")
    env = {**os.environ, "TQDM_DISABLE": "1", PROGRESS_LOG_ENV: str(log)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert any("stage" in ln and "2/2" in ln for ln in log.read_text().splitlines())


def test_without_the_log_the_bar_is_tqdm_auto(monkeypatch):
    from tqdm.auto import tqdm

    monkeypatch.delenv(PROGRESS_LOG_ENV, raising=False)
    bar = progress_bar(range(2), desc="live")
    assert type(bar) is tqdm and not bar.disable
    bar.close()


def test_training_puts_one_line_per_epoch_in_the_log_and_one_summary_line_out(tiny_cfg, tmp_path, monkeypatch,
                                                                              capsys):
    log = tmp_path / "job.log"
    monkeypatch.setenv(PROGRESS_LOG_ENV, str(log))
    monkeypatch.setenv("TQDM_DISABLE", "1")  # as in a batch-executed kernel
    train(tiny_cfg.replace(epochs=3, progress=True), "student")
    captured = capsys.readouterr()
    assert captured.err == ""  # no bar on stderr: it would become outputs of the notebook cell
    assert captured.out.strip().startswith("student tiny 4x: epochs 1-3 in")
    assert len(captured.out.strip().splitlines()) == 1
    epochs = [ln for ln in log.read_text().splitlines() if "student tiny 4x" in ln]
    assert [n for n in (1, 2, 3) if any(f"{n}/3" in ln and "val=" in ln for ln in epochs)] == [1, 2, 3]


@pytest.fixture
def demo_root(tmp_path):
    from kdmri.data.demo import build_demo

    build_demo(tmp_path, accs=(4,), verbose=False)
    return tmp_path / "demo"


def test_batch_executed_notebook_keeps_few_outputs_per_cell_and_the_log_the_progress(demo_root, tmp_path):
    """Notebook 03 through the batch runner (papermill, the quick profile with more, shorter
    epochs): every cell stores at most 30 outputs and no progress bar; the job log holds
    the bars, one line per epoch of each stage."""
    runs, epochs = tmp_path / "runs", 6
    code = main(["batch", "--params", "ci", "--notebooks", "notebooks/03_teacher_student.ipynb",
                 "--out", str(runs), "--no-progress",
                 "--set", f"data_root={demo_root}", "--set", f"experiments_root={tmp_path / 'exp'}",
                 "--set", "progress=true", "--set", f"epochs={epochs}", "--set", "max_train_slices=4",
                 "--set", "max_val_slices=4"])
    folder = runs / "demo" / "acc_4x"
    assert code == 0, (folder / "03_teacher_student.log").read_text()[-3000:]
    executed = nbformat.read(str(folder / "03_teacher_student.ipynb"), as_version=4)
    counts = [len(c.get("outputs", [])) for c in executed.cells if c.cell_type == "code"]
    assert max(counts) <= 30, counts
    texts = ["".join(o.get("text", "")) for c in executed.cells for o in c.get("outputs", [])]
    assert not [t for t in texts if "epoch/s" in t or "it/s" in t], "a progress bar is stored in the notebook"
    assert any(f"teacher demo 4x: epochs 1-{epochs} in" in t for t in texts)  # the summary lines stay
    assert any(f"student demo 4x: epochs 1-{epochs} in" in t for t in texts)
    log = (folder / "03_teacher_student.log").read_text().splitlines()
    for stage in ("teacher", "student"):
        lines = [ln for ln in log if f"{stage} demo 4x" in ln and "val=" in ln]
        assert {n for n in range(1, epochs + 1) if any(f" {n}/{epochs} " in ln for ln in lines)} == set(
            range(1, epochs + 1)), lines
    assert any("evaluate teacher" in ln for ln in log)
