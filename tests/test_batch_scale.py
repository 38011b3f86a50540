"""Beyond one machine: the job graph, --jobs K, the per-experiment lock, SLURM submission
(fake sbatch) and the cost plan."""

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_batch import write_nb, write_params

from kdmri.config import Config
from kdmri.tools import costs, graph
from kdmri.tools.batch import dependencies, plan
from kdmri.tools.cli import main
from kdmri.tools.jobs import NotebookJob, SlurmOptions, run_local, submit_slurm, threads_per_job

REPO = Path(__file__).resolve().parents[1]

# A fake notebook: logs its start and end (and the thread count it was given) to `log`.
PARAMS = 'params_file = None\ndataset = "demo"\nepochs = 1\nlog = ""\nwait_for = ""\n'
BODY = ("import json, os, time\n"
        "key = f'{dataset}/{__import__(\"pathlib\").Path(params_file).parent.name}/' + NAME\n"
        "with open(log, 'a') as fh: fh.write(json.dumps(['start', key, time.time(), "
        "os.environ.get('OMP_NUM_THREADS')]) + '\\n')\n"
        "time.sleep(0.3)\n"
        "t0 = time.time()\n"  # 03 may wait until another job has started: proof they overlap
        "while wait_for and NAME == '03_teacher_student' and f'\"{wait_for}\"' not in open(log).read():\n"
        "    assert time.time() - t0 < 60, 'the other job never started'\n"
        "    time.sleep(0.05)\n"
        "with open(log, 'a') as fh: fh.write(json.dumps(['end', key, time.time(), None]) + '\\n')\n")
STEMS = ("00_data", "03_teacher_student", "04_kd_mri", "06_super_resolution")


def fake_notebooks(folder, stems=STEMS):
    folder.mkdir()
    return [write_nb(folder / f"{s}.ipynb", PARAMS, f"NAME = {s!r}", BODY) for s in stems]


def test_graph_table_transitive_and_unknown_notebooks():
    stems = ["00_data", "01_masks", "02_dc_cnn", "03_teacher_student", "04_kd_mri", "05_sft_kd",
             "06_super_resolution", "07_ablations", "08_results"]
    edges = graph.notebook_edges(stems)
    named = {stems[i]: [stems[d] for d in e] for i, e in enumerate(edges)}
    assert named["00_data"] == [] and named["06_super_resolution"] == ["00_data"]
    assert named["05_sft_kd"] == ["03_teacher_student"] and named["07_ablations"] == ["03_teacher_student"]
    assert named["08_results"] == ["01_masks", "02_dc_cnn", "04_kd_mri", "05_sft_kd", "06_super_resolution",
                                   "07_ablations"]
    # 03 absent: 04 falls back to 03's own dependency; 08 without 04 waits for 03 directly
    assert graph.notebook_edges(["00_data", "04_kd_mri"]) == [[], [0]]
    assert graph.notebook_edges(["03_teacher_student", "08_results"]) == [[], [0]]
    # a notebook outside the table runs after every earlier one (direct edge to the last)
    assert graph.notebook_edges(["00_data", "06_super_resolution", "mine"]) == [[], [0], [1]]


def test_local_jobs_in_parallel_follow_the_graph(tmp_path):
    nbs = fake_notebooks(tmp_path / "nbs", STEMS[:3])  # 6 jobs: each a process and a kernel
    exp = str(tmp_path / "exp")
    # same dataset, data folder not built yet: 8x's first job waits for 4x's
    p4 = write_params(tmp_path / "a4.yaml", dataset="alpha", acc="4x", experiments_root=exp,
                      data_root=str(tmp_path / "nodata"),
                      notebook_parameters={"wait_for": "alpha/acc_8x/00_data"})
    p8 = write_params(tmp_path / "a8.yaml", dataset="alpha", acc="8x", experiments_root=exp,
                      data_root=str(tmp_path / "nodata"))
    log = tmp_path / "log.jsonl"
    out = tmp_path / "runs"
    jobs = plan([p4, p8], nbs, {"log": str(log)}, out)
    results = run_local(jobs, out, slots=2, overrides={"log": str(log)}, progress=False)
    assert all(r.ok for r in results), [r.error for r in results]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    start = {k: t for e, k, t, _ in events if e == "start"}
    end = {k: t for e, k, t, _ in events if e == "end"}
    assert len(start) == len(end) == 6
    for acc in ("4x", "8x"):
        k = f"alpha/acc_{acc}/"
        assert start[k + "03_teacher_student"] >= end[k + "00_data"]
        assert start[k + "04_kd_mri"] >= end[k + "03_teacher_student"]
    assert start["alpha/acc_8x/00_data"] >= end["alpha/acc_4x/00_data"]
    # 4x/03 waited, running, for 8x/00 to start: two jobs ran at once
    assert start["alpha/acc_8x/00_data"] < end["alpha/acc_4x/03_teacher_student"]
    assert {t for e, _, _, t in events if e == "start"} == {str(threads_per_job(2))}
    # per-job log and result files, and the merged summary
    folder = out / "jobs" / "alpha_8x"
    assert (folder / "04_kd_mri.log").is_file()
    assert json.loads((folder / "04_kd_mri.json").read_text())["ok"] is True
    assert (out / "alpha" / "acc_8x" / "04_kd_mri.ipynb").is_file()


def test_the_lock_keeps_a_second_process_from_training_the_same_stage(tiny_cfg, tmp_path, monkeypatch):
    from kdmri.training import engine

    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny_cfg.to_dict()))
    marks = tmp_path / "marks"
    script = (
        "import sys, time, yaml, torch\n"
        "torch.set_num_threads(1)\n"
        "from kdmri.config import Config\n"
        "from kdmri.training import engine\n"
        "real = engine.fit\n"
        "def slow_fit(*a, **k):\n"
        f"    open({str(marks)!r} + '.fit_start', 'w').write(str(time.time()))\n"
        "    time.sleep(1.0)\n"
        "    state = real(*a, **k)\n"
        f"    open({str(marks)!r} + '.fit_end', 'w').write(str(time.time()))\n"
        "    return state\n"
        "engine.fit = slow_fit\n"
        f"engine.train(Config(**yaml.safe_load(open({str(cfg_file)!r}))), 'student')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO)
    try:
        deadline = time.time() + 60
        while not Path(str(marks) + ".fit_start").exists():
            assert proc.poll() is None and time.time() < deadline, "the first process did not start training"
            time.sleep(0.05)
        calls = []
        monkeypatch.setattr(engine, "fit", lambda *a, **k: calls.append(a))
        torch.set_num_threads(1)
        folder = engine.train(Config(**tiny_cfg.to_dict()), "student")  # waits for the lock
        returned = time.time()
    finally:
        assert proc.wait(timeout=120) == 0
    assert calls == [], "the second process trained the stage again"
    assert returned >= float(Path(str(marks) + ".fit_end").read_text())  # it waited for the first
    ckpt = torch.load(folder / "model.pt", weights_only=False)
    assert ckpt["epoch"] == 2 and [r["epoch"] for r in ckpt["history"]] == [1, 2]
    assert (folder / ".lock").is_file()


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """`sbatch` and `srun` on PATH: sbatch records its file and answers a new job id."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\nn=$(cat \"$0.count\" 2>/dev/null || echo 100)\nn=$((n + 1))\necho $n > \"$0.count\"\n"
        "echo \"$1\" >> \"$0.files\"\necho \"Submitted batch job $n\"\n")
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in ("sbatch", "srun"):
        (bin_dir / f).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_slurm_submission_dependencies_and_requeue(tmp_path, fake_slurm):
    import submitit

    nbs = fake_notebooks(tmp_path / "nbs")
    p4 = write_params(tmp_path / "a4.yaml", dataset="alpha", acc="4x", experiments_root=str(tmp_path / "e"))
    p8 = write_params(tmp_path / "a8.yaml", dataset="beta", acc="8x", experiments_root=str(tmp_path / "e"))
    out = tmp_path / "runs"
    jobs = plan([p4, p8], nbs, {"log": "x"}, out)
    opts = SlurmOptions(partition="gpu", gpus_per_job=1, cpus_per_job=6, time="1-02:00:00", mem="32G",
                        extra={"qos": "high"})
    ids, summary = submit_slurm(jobs, out, opts)
    assert ids == [str(i) for i in range(101, 109)] and summary == "109"
    scripts = {}
    for jid in ids + [summary]:
        scripts[jid] = (out / "jobs" / "slurm" / jid / f"{jid}_submission.sh").read_text()
    first = scripts["101"]
    for flag in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=6", "--time=1560", "--mem=32G",
                 "--qos=high", "--requeue", "--kill-on-invalid-dep=yes", "--signal=USR2@90"):
        assert f"#SBATCH {flag}" in first, flag
    assert "--dependency" not in first  # 00_data of alpha: nothing to wait for
    deps = {jid: next((ln.split("=", 1)[1] for ln in s.splitlines() if ln.startswith("#SBATCH --dependency")),
                      None) for jid, s in scripts.items()}
    # alpha: 00=101, 03=102, 04=103, 06=104; beta: 105..108 (different data folder: independent)
    assert deps["102"] == "afterok:101" and deps["103"] == "afterok:102" and deps["104"] == "afterok:101"
    assert deps["105"] is None and deps["107"] == "afterok:106"
    assert deps[summary] == "afterany:" + ":".join(ids)
    assert "--gpus-per-node" not in scripts[summary]
    assert "#SBATCH --job-name=kdmri-alpha_4x-04_kd_mri" in scripts["103"]
    # the pickled callable is the job, and it requeues itself on timeout / preemption
    with open(out / "jobs" / "slurm" / "103" / "103_submitted.pkl", "rb") as fh:
        delayed = pickle.load(fh)
    assert isinstance(delayed.function, NotebookJob) and delayed.function.job.key == "alpha_4x/04_kd_mri"
    assert delayed.function.threads == 6
    again = delayed.function.checkpoint()
    assert isinstance(again, submitit.helpers.DelayedSubmission) and again.function is delayed.function
    assert (out / "alpha" / "acc_4x" / "params.yaml").is_file()  # written before submission


THROUGHPUT = """# kdmri benchmarks (cpu)

## Training (batch 4)

| size | teacher slices/s | student slices/s | KD slices/s | a | b | c |
|---|---|---|---|---|---|---|
| 96x96 | 20.0 | 40.0 | 32.0 | 1x | 1x | 1x |
| 240x240 | 4.0 | 8.0 | 6.4 | 1x | 1x | 1x |
"""


def test_cost_plan_graph_hours_and_totals(tmp_path, capsys):
    bench = tmp_path / "bench.md"
    bench.write_text(THROUGHPUT)
    exp = str(tmp_path / "exp")
    ci = yaml.safe_load((REPO / "params" / "ci.yaml").read_text())
    p4 = write_params(tmp_path / "ci4.yaml", **{**ci, "experiments_root": exp})
    p8 = write_params(tmp_path / "ci8.yaml", **{**ci, "acc": "8x", "experiments_root": exp})
    nbs = [REPO / "notebooks" / f"{s}.ipynb" for s in ("00_data", "03_teacher_student", "04_kd_mri")]
    jobs = plan([p4, p8], nbs, out=tmp_path / "runs")
    estimates, notes = costs.estimate(jobs, "cuda", [bench])
    demo = Config(**{k: v for k, v in ci.items() if k != "notebook_parameters"}).data_path
    train, val, _ = costs.slice_counts(Config(dataset="demo", data_root=str(demo)))
    n, nv = min(train, 32), min(val, 8)
    teacher = 2 * (n / 20.0 + nv / 20.0 / 3) / 3600  # epochs x (train + validation forward)
    student = 2 * (n / 40.0 + nv / 40.0 / 3) / 3600
    assert estimates[1].hours == pytest.approx(teacher + student)
    assert [s.stage for s in estimates[2].stages] == ["feature", "kd"]  # teacher, student: from 03
    kd = 2 * (n / 40.0 * 40.0 / 32.0 + nv / 40.0 / 3) / 3600  # cached teacher: the measured KD step
    assert estimates[2].stages[1].hours == pytest.approx(kd)
    assert estimates[0].hours == 0 and dependencies(jobs)[2] == [1]
    assert any("no cuda throughput" in x for x in notes)
    code = main(["batch", "--plan", "--params", str(p4), str(p8), "--notebooks", *map(str, nbs),
                 "--throughput", str(bench), "--out", str(tmp_path / "runs"), "--calibration-steps", "1"])
    text = capsys.readouterr().out
    assert code == 0 and not (tmp_path / "runs").exists()  # nothing ran
    assert "calibration: " in text and "states no calibration" in text  # measured, but bench.md has none
    assert "demo_8x/04_kd_mri" in text and "feature 2x32; kd 2x32" in text
    total = sum(e.hours for e in estimates)
    assert f"{costs.hours_text(total)} h" in text and "longest chain" in text
    assert costs.critical_path_hours(estimates) == pytest.approx(total / 2)  # two independent chains
    # a size that was not measured is scaled by pixel count, and said so
    est = costs.Estimator(costs.read_throughput([bench]), "cpu")
    assert est.step_seconds("recon", "teacher", (640, 368)) == pytest.approx(640 * 368 / (240 * 240 * 4.0))
    assert any("640x368 not measured" in x for x in est.notes)
