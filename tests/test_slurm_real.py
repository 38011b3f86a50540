"""The SLURM path against a real single-node SLURM (Debian's slurm-wlm on this machine).

``tests/slurm/setup_slurm.sh`` installs slurm-wlm and munge when missing and starts munged,
slurmctld and slurmd (root, apt-get and Debian's package registry needed; otherwise the
tests are skipped and the skip reason says which is missing). One two-params-file batch on
tiny data (notebooks 00, 03 training ``student``, 06 training ``teacher``; 60 short epochs)
is submitted through submitit, and

* the jobs run in the order of their ``afterok`` dependencies (beta's 00 also waits for
  alpha's, which builds the shared data folder); beta's 00 fails on purpose: its job fails
  and the jobs that need it are cancelled, never run;
* ``alpha 03`` is requeued with ``scontrol requeue`` after its second epoch, and its rerun
  resumes from ``model.pt``;
* ``alpha 06`` reaches its time limit: once an epoch is saved its limit is cut to what it
  has run plus under two minutes (``scontrol update TimeLimit``), SLURM sends submitit's
  warning signal (``--signal USR2@90``), the job requeues itself, and the rerun resumes
  from ``model.pt``;
* the summary job writes the summary of both params files.

A requeued job waits a fixed 2 minutes before SLURM starts it again (``BeginTime``); the test
moves that start to now (``scontrol update StartTime=now``) to stay well under 3 minutes.
Job ids, states and requeue counts are printed (``pytest -s``) and kept in ``slurm.log`` in
the test's tmp folder, whose path is printed.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch
from test_batch import write_nb, write_params

from kdmri.tools.batch import plan
from kdmri.tools.jobs import SlurmOptions, submit_slurm

SETUP = Path(__file__).resolve().parent / "slurm" / "setup_slurm.sh"
EPOCHS = 60  # first runs of alpha's 03 and 06 sleep PAUSE s per epoch; reruns do not
PAUSE = 1.0
DEADLINE_S = 170
REQUEUED, TIMED_OUT = "4x/03_teacher_student", "4x/06_super_resolution"

PARAMS = 'params_file = None\nevents = ""\npause = 0.0\n'
EVENT = ("import json, os, time\n"
         "from kdmri.config import load_config\n"
         "cfg = load_config(params_file)\n"
         "restart = int(os.environ.get('SLURM_RESTART_COUNT', '0'))\n"
         "def event(what, value=None):\n"
         "    with open(events, 'a') as fh:\n"
         "        fh.write(json.dumps([what, f'{cfg.acc}/' + NAME, time.time(),\n"
         "                             os.environ.get('SLURM_JOB_ID'), restart, value]) + '\\n')\n"
         "event('start')\n")
DATA = ("import numpy as np\n"
        "from kdmri.data import write_volume\n"
        "from kdmri.physics.masks import cartesian_mask\n"
        "if not cfg.data_path.is_dir():  # built once: beta's 00 waits for alpha's\n"
        "    masks = {a: cartesian_mask((32, 24), a, seed=a) for a in (4, 8)}\n"
        "    yy, xx = np.meshgrid(np.linspace(-1, 1, 32), np.linspace(-1, 1, 24), indexing='ij')\n"
        "    for split, name, n, s in (('train', 't1', 3, 0), ('train', 't2', 3, 1),\n"
        "                              ('validation', 'v1', 2, 2)):\n"
        "        vol = np.stack([np.exp(-((yy - 0.1 * (s + i)) ** 2 + xx ** 2) * (2 + i))\n"
        "                        for i in range(n)], -1)\n"
        "        write_volume(cfg.data_path / split / f'{name}.h5', vol.astype(np.float32), masks)\n"
        "event('end')\n")
TRAIN = ("import torch\n"
         "from kdmri.training import engine\n"
         "last = cfg.experiment(STAGE) / 'model.pt'\n"
         "event('found', torch.load(last, weights_only=False)['epoch'] if last.is_file() else 0)\n"
         "if pause and restart == 0 and cfg.acc == '4x':  # slow first runs of the jobs interrupted\n"
         "    logged = engine.CSVLog.on_epoch_end\n"
         "    def slowly(self, state):\n"
         "        logged(self, state)\n"
         "        event('epoch', state['epoch'])\n"
         "        time.sleep(pause)\n"
         "    engine.CSVLog.on_epoch_end = slowly\n"
         "engine.train(cfg, STAGE)\n"
         "event('end', torch.load(last, weights_only=False)['epoch'])\n")
FAIL_8X = "assert cfg.acc != '8x', 'this notebook fails for beta on purpose'\n"
NOTEBOOKS = {"00_data": FAIL_8X + DATA, "03_teacher_student": "STAGE = 'student'\n" + TRAIN,
             "06_super_resolution": "STAGE = 'teacher'\n" + TRAIN}


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node SLURM (installed and started by tests/slurm/setup_slurm.sh)."""
    if not sys.platform.startswith("linux"):
        pytest.skip(f"real SLURM test: needs Linux with apt-get (this is {sys.platform})")
    if not shutil.which("bash"):
        pytest.skip("real SLURM test: no bash to run tests/slurm/setup_slurm.sh")
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=1200)
    if proc.returncode == 2:  # the script names what is missing: not root, no apt, no registry
        pytest.skip("real SLURM test: " + (proc.stderr.strip().splitlines() or ["setup refused"])[-1])
    assert proc.returncode == 0, f"{SETUP} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    print(f"\n{proc.stdout.strip()} (set-up {time.perf_counter() - t0:.1f} s)")
    return proc.stdout.strip()


def test_setup_script_says_why_it_cannot_run_when_not_root():
    """The reason the real SLURM tests give when they are skipped (exit 2, one line)."""
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("root without runuser: cannot run the set-up script as another user")
        command = ["runuser", "-u", "nobody", "--", "bash", str(SETUP)]
    else:
        command = ["bash", str(SETUP)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "setup_slurm: not root" in proc.stderr, proc.stderr


def test_setup_script_is_idempotent(slurm_cluster):
    pids = subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True, text=True).stdout.split()
    proc = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "idle" in proc.stdout, proc.stderr
    assert subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True, text=True).stdout.split() == pids


def scontrol(*args: str) -> str:
    return subprocess.run(["scontrol", *args], capture_output=True, text=True, check=True, timeout=30).stdout


def job_info(jid: str) -> dict[str, str]:
    """``scontrol show job -o``: {JobState, Reason, Restarts, RunTime, TimeLimit, ...}."""
    return dict(re.findall(r"(\w+)=(\S*)", scontrol("show", "job", "-o", jid)))


def read_events(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


class Log:
    """Lines printed and kept in ``<tmp>/slurm.log``."""

    def __init__(self, path: Path):
        self.path, self.t0 = path, time.perf_counter()

    def __call__(self, text: str) -> None:
        line = f"[{time.perf_counter() - self.t0:6.1f} s] {text}"
        print(line, flush=True)
        with open(self.path, "a") as fh:
            fh.write(line + "\n")


@pytest.fixture(scope="module")
def slurm_batch(slurm_cluster, tmp_path_factory):
    """Submit the batch, requeue one job, let one reach its time limit, wait for the summary."""
    tmp = tmp_path_factory.mktemp("slurm")
    log = Log(tmp / "slurm.log")
    print(f"\nSLURM test log: {log.path}")
    nbs = tmp / "nbs"
    nbs.mkdir()
    for stem, body in NOTEBOOKS.items():
        write_nb(nbs / f"{stem}.ipynb", PARAMS, f"NAME = {stem!r}\n" + EVENT, body)
    common = dict(dataset="tiny", data_root=str(tmp / "data"), experiments_root=str(tmp / "exp"),
                  epochs=EPOCHS, batch_size=3, lr_step=20, progress=True)
    pa = write_params(tmp / "alpha_4x.yaml", acc="4x", **common)
    pb = write_params(tmp / "beta_8x.yaml", acc="8x", **common)
    events, out = tmp / "events.jsonl", tmp / "runs"
    jobs = plan([pa, pb], sorted(nbs.glob("*.ipynb")), {"events": str(events), "pause": PAUSE}, out)
    options = SlurmOptions(gpus_per_job=0, cpus_per_job=1, time="00:10:00")
    t0 = time.perf_counter()
    ids, summary = submit_slurm(jobs, out, options)
    by_key = {f"{j.cfg.acc}/{j.notebook.stem}": jid for j, jid in zip(jobs, ids)}
    for job, jid in zip(jobs, ids):
        log(f"submitted {jid} {job.key} dependency={job_info(jid).get('Dependency')}")
    log(f"submitted {summary} summary dependency={job_info(summary).get('Dependency')}")
    requeued, limited, started_now = None, None, set()
    everything = ids + [summary]
    last_states: dict[str, str] = {}
    while True:
        elapsed = time.perf_counter() - t0
        assert elapsed < DEADLINE_S, f"the batch did not finish in {DEADLINE_S} s; see {log.path}"
        infos = {jid: job_info(jid) for jid in everything}
        for jid, info in infos.items():
            state = f"{info['JobState']} reason={info['Reason']} restarts={info['Restarts']}"
            if last_states.get(jid) != state:
                log(f"job {jid}: {state}")
                last_states[jid] = state
        seen = read_events(events)
        epochs = {(e[1], e[4]): e[5] for e in seen if e[0] == "epoch"}
        if requeued is None and epochs.get((REQUEUED, 0), 0) >= 2:
            requeued = by_key[REQUEUED]
            scontrol("requeue", requeued)
            log(f"scontrol requeue {requeued} ({REQUEUED} after epoch {epochs[(REQUEUED, 0)]})")
        jb = by_key[TIMED_OUT]
        if limited is None and epochs.get((TIMED_OUT, 0), 0) >= 1 and infos[jb]["JobState"] == "RUNNING":
            # the warning signal goes out at the first check (every 30 s) with under 90 + 30 s
            # left, so leave 45 s or more: the signal comes before the limit, not with it
            ran = sum(int(x) * 60**i for i, x in enumerate(reversed(infos[jb]["RunTime"].split(":"))))
            limited = (jb, infos[jb]["TimeLimit"], math.ceil((ran + 45) / 60))
            scontrol("update", f"JobId={jb}", f"TimeLimit={limited[2]}")
            log(f"scontrol update JobId={jb} TimeLimit={limited[2]} ({TIMED_OUT} ran {ran} s; "
                f"was {limited[1]})")
        for jid, info in infos.items():  # the 2-minute hold of a requeued job, skipped
            held = info["JobState"] == "PENDING" and info["Reason"] == "BeginTime"
            if held and (jid, info["Restarts"]) not in started_now:
                started_now.add((jid, info["Restarts"]))
                extra = [f"TimeLimit={limited[1]}"] if limited and jid == limited[0] else []
                scontrol("update", f"JobId={jid}", "StartTime=now", *extra)
                log(f"scontrol update JobId={jid} StartTime=now {' '.join(extra)} "
                    f"(requeued, restarts={info['Restarts']})")
        if infos[summary]["JobState"] not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            break
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    log(f"batch finished in {wall:.1f} s (submission to summary)")
    final = {jid: job_info(jid) for jid in everything}
    for job, jid in zip(jobs, ids):
        info = final[jid]
        log(f"final {jid} {job.key}: {info['JobState']} exit={info['ExitCode']} restarts={info['Restarts']}")
    log(f"final {summary} summary: {final[summary]['JobState']} restarts={final[summary]['Restarts']}")
    return dict(jobs=jobs, ids=ids, by_key=by_key, summary=summary, final=final, events=read_events(events),
                out=out, tmp=tmp, requeued=requeued, limited=limited, wall=wall, log=log)


def _spans(events, key):
    """(start, end) times of each run of ``key``, by restart count."""
    runs: dict[int, dict] = {}
    for what, k, t, _, restart, _ in events:
        if k == key:
            runs.setdefault(restart, {})[what] = t
    return runs


def test_real_slurm_runs_jobs_in_afterok_order(slurm_batch):
    b = slurm_batch
    ev, final = b["events"], b["final"]
    for key, needs in ((REQUEUED, "4x/00_data"), (TIMED_OUT, "4x/00_data"),
                       ("8x/00_data", "4x/00_data")):  # the data folder is built once
        first = min(r["start"] for r in _spans(ev, key).values())
        done = max(r.get("end", 0) for r in _spans(ev, needs).values())
        assert done and first > done, f"{key} started before {needs} ended"
    for key in ("4x/00_data", REQUEUED, TIMED_OUT):
        assert final[b["by_key"][key]]["JobState"] == "COMPLETED", (key, final[b["by_key"][key]])


def test_real_slurm_failed_notebook_fails_its_job_and_cancels_its_dependants(slurm_batch):
    b = slurm_batch
    failed = b["by_key"]["8x/00_data"]
    assert b["final"][failed]["JobState"] == "FAILED", b["final"][failed]
    for key in ("8x/03_teacher_student", "8x/06_super_resolution"):
        assert b["final"][b["by_key"][key]]["JobState"] == "CANCELLED", (key, b["final"][b["by_key"][key]])
        assert not _spans(b["events"], key), f"{key} ran although 8x/00_data, which it needs, failed"
    result = json.loads((b["out"] / "jobs" / "tiny_8x" / "00_data.json").read_text())
    assert result["ok"] is False and "fails for beta on purpose" in result["error"]


def _check_resumed(b, key, jid):
    runs = _spans(b["events"], key)
    found = {e[4]: e[5] for e in b["events"] if e[1] == key and e[0] == "found"}
    epochs = [e[5] for e in b["events"] if e[1] == key and e[0] == "epoch"]
    assert int(b["final"][jid]["Restarts"]) >= 1 and len(runs) >= 2, runs
    assert "end" not in runs[0], "the first run was not interrupted"
    assert found[0] == 0 and 1 <= found[max(found)] <= max(epochs) < EPOCHS, (found, epochs)
    ends = [e[5] for e in b["events"] if e[1] == key and e[0] == "end"]
    assert ends == [EPOCHS]
    job = next(j for j in b["jobs"] if f"{j.cfg.acc}/{j.notebook.stem}" == key)
    stage = "student" if "03" in key else "teacher"
    ckpt = torch.load(job.cfg.experiment(stage) / "model.pt", weights_only=False)
    assert [r["epoch"] for r in ckpt["history"]] == list(range(1, EPOCHS + 1))
    executed = nbformat.read(str(job.output), as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    resumed = found[max(found)]
    assert f"epochs {resumed + 1}-{EPOCHS}" in text, text  # the rerun trained only the rest
    result = json.loads((b["out"] / "jobs" / "tiny_4x" / f"{job.notebook.stem}.json").read_text())
    assert result["ok"] and result["slurm_job_id"] == jid
    assert result["restarts"] == int(b["final"][jid]["Restarts"])
    return resumed


def test_real_slurm_requeued_job_resumes_from_model_pt(slurm_batch):
    b = slurm_batch
    jid = b["by_key"][REQUEUED]
    assert b["requeued"] == jid
    resumed = _check_resumed(b, REQUEUED, jid)
    b["log"](f"requeued {jid}: restarts={b['final'][jid]['Restarts']}, resumed after epoch {resumed}")


def test_real_slurm_job_at_its_time_limit_requeues_itself_and_resumes(slurm_batch):
    b = slurm_batch
    jid = b["by_key"][TIMED_OUT]
    assert b["limited"] and b["limited"][0] == jid
    resumed = _check_resumed(b, TIMED_OUT, jid)
    folder = b["out"] / "jobs" / "slurm" / jid
    logs = (folder / f"{jid}_0_log.out").read_text() + (folder / f"{jid}_0_log.err").read_text()
    assert "this job is timed-out" in logs and f"Requeued job {jid}" in logs, logs[-3000:]
    assert "DUE TO TIME LIMIT" not in logs, "the warning signal came with the kill, not before it"
    b["log"](f"time limit {jid}: restarts={b['final'][jid]['Restarts']}, resumed after epoch {resumed}; "
             + next(line for line in logs.splitlines() if f"Requeued job {jid}" in line).strip())


def test_real_slurm_summary_holds_both_params_files(slurm_batch):
    b = slurm_batch
    assert b["final"][b["summary"]]["JobState"] == "COMPLETED"
    rows = json.loads((b["out"] / "summary.json").read_text())
    stems = ("00_data", "03_teacher_student", "06_super_resolution")
    assert sorted((Path(r["params"]).name, r["notebook"], r["ok"]) for r in rows) == sorted(
        [("alpha_4x.yaml", f"{s}.ipynb", True) for s in stems]
        + [("beta_8x.yaml", f"{s}.ipynb", False) for s in stems])
    text = (b["out"] / "summary.md").read_text()
    assert "## tiny 4x" in text and "## tiny 8x" in text and "fails for beta on purpose" in text
    b["log"](f"summary {b['summary']}: {len(rows)} rows, wall {b['wall']:.1f} s; log {b['log'].path}")
