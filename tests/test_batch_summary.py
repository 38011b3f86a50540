"""runs/summary.md and summary.json are shared by the batches that write into one folder:
a batch merges its rows into them (earlier rows kept, its own replaced), under a lock."""

import json
import os
import subprocess
import sys
from pathlib import Path

from test_batch import PARAMS_CELL, Recorder, write_nb, write_params

from kdmri.tools import batch


def test_a_second_batch_keeps_the_first_ones_rows(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    exp = str(tmp_path / "exp")
    p1 = write_params(tmp_path / "a.yaml", dataset="alpha", acc="4x", experiments_root=exp)
    p2 = write_params(tmp_path / "b.yaml", dataset="beta", acc="8x", experiments_root=exp)
    nb = [write_nb(nbs / f"0{i}_n.ipynb", PARAMS_CELL, "x = 1") for i in (1, 2)]
    runs = tmp_path / "runs"
    batch.run_batch([p1], nb, out=runs, execute=Recorder(), progress=False)
    report = batch.run_batch([p2], nb, out=runs, execute=Recorder(), progress=False)
    rows = json.loads((runs / "summary.json").read_text())
    assert [(r["params"], r["notebook"]) for r in rows] == [
        (str(p), n.name) for p in (p1, p2) for n in nb]
    text = (runs / "summary.md").read_text()
    assert text == report.summary + "\n"
    assert "## alpha 4x" in text and "## beta 8x" in text and text.count("| ok |") == 4
    # the first params file again, one notebook failing: its rows are replaced, not added
    batch.run_batch([p1], nb, out=runs, execute=Recorder(fail={nb[1].name}), progress=False)
    rows = json.loads((runs / "summary.json").read_text())
    assert [(Path(r["params"]).name, r["notebook"], r["ok"]) for r in rows] == [
        ("b.yaml", nb[0].name, True), ("b.yaml", nb[1].name, True),
        ("a.yaml", nb[0].name, True), ("a.yaml", nb[1].name, False)]
    text = (runs / "summary.md").read_text()
    assert text.count("| ok |") == 3 and text.count("FAILED") == 1
    assert text.count("## alpha 4x") == 1 and text.count("## beta 8x") == 1


WRITER = """
import sys, time
from pathlib import Path
from types import SimpleNamespace as NS

from kdmri.tools.summary import write_summary

out, me, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
for i in range(25):
    job = NS(params=me, notebook=Path(f"{i:02d}.ipynb"), output=out / me / f"{i:02d}.ipynb",
             parameters={"params_file": str(out / me / "params.yaml")})
    write_summary([NS(job=job, ok=True, seconds=1.0, peak_rss_mb=None, error=None)], out)
"""


def test_two_batches_writing_the_summary_at_once_keep_every_row(tmp_path):
    """Two processes merge 25 rows each into one summary, one row per write, at once."""
    out, go = tmp_path / "runs", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(out), me, str(go)], env=env,
                              stderr=subprocess.PIPE, text=True) for me in ("a", "b")]
    go.touch()
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    rows = json.loads((out / "summary.json").read_text())
    assert sorted((r["params"], r["notebook"]) for r in rows) == [
        (me, f"{i:02d}.ipynb") for me in ("a", "b") for i in range(25)]
    assert (out / "summary.md").read_text().count("| ok |") == 50
