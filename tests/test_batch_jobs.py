"""A batch job (kdmri.tools.jobs.NotebookJob) fails as a process when its notebook fails, so
SLURM's afterok (and --kill-on-invalid-dep) see the failure; a requeued run starts without
the result of the run before it. tests/test_slurm_real.py checks both on a real SLURM."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from test_batch import write_nb, write_params

from kdmri.tools.batch import plan
from kdmri.tools.jobs import JobFailed, NotebookJob, result_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def one_job(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_nb(nbs / "00_data.ipynb", "params_file = None\n", "x = 1")
    params = write_params(tmp_path / "a.yaml", dataset="alpha", acc="4x",
                          experiments_root=str(tmp_path / "e"))
    out = tmp_path / "runs"
    (job,) = plan([params], [nbs / "00_data.ipynb"], {}, out)
    Path(job.parameters["params_file"]).parent.mkdir(parents=True)
    Path(job.parameters["params_file"]).write_text("dataset: alpha\nacc: 4x\n")
    return job, out


def failing(notebook, output, parameters, cwd):
    raise RuntimeError("cell 3 broke")


def succeeding(notebook, output, parameters, cwd):
    output.write_text("{}")


def test_a_failed_notebook_raises_after_writing_its_result(one_job):
    job, out = one_job
    with pytest.raises(JobFailed, match="alpha_4x/00_data: RuntimeError: cell 3 broke"):
        NotebookJob(job, out, threads=1, execute=failing)()
    record = json.loads(result_path(job, out).read_text())
    assert record["ok"] is False and record["error"] == "RuntimeError: cell 3 broke"
    record = NotebookJob(job, out, threads=1, execute=succeeding)()
    assert record["ok"] is True and record["restarts"] == 0


def test_a_rerun_starts_without_the_previous_result(one_job):
    job, out = one_job
    path = result_path(job, out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ok": False, "seconds": 1, "error": "killed by the requeue"}))
    seen = []

    def look(notebook, output, parameters, cwd):
        seen.append(path.exists())

    NotebookJob(job, out, threads=1, execute=look)()
    assert seen == [False]


def test_a_job_process_exits_nonzero_when_its_notebook_fails(one_job, tmp_path):
    """The entry of a local --jobs K process (a SLURM job runs the same callable)."""
    job, out = one_job
    pkl = tmp_path / "job.pkl"
    pkl.write_bytes(pickle.dumps(NotebookJob(job, out, threads=1, execute=failing)))
    code = "import sys; from kdmri.tools.jobs import run_pickled; run_pickled(sys.argv[1])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    proc = subprocess.run([sys.executable, "-c", code, str(pkl)], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "FAILED alpha_4x/00_data: RuntimeError: cell 3 broke" in proc.stderr
    assert json.loads(result_path(job, out).read_text())["ok"] is False
