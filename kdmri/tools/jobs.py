"""Where batch jobs run: here one at a time, here ``--jobs K`` at once, or on SLURM.

``python -m kdmri batch --params knee_4x knee_8x [--executor local|slurm] [--jobs K] [--plan]``

* Every job is one notebook for one params file (:func:`kdmri.tools.batch.plan`); the job
  graph (:mod:`kdmri.tools.graph`) says which jobs wait for which.
* ``--executor local --jobs 1`` (the default): the jobs run one after another in this
  process (the kernel is papermill's).
* ``--executor local --jobs K``: a small scheduler of ours (submitit's ``LocalExecutor``
  has no job dependencies) starts each job in its own process (``python -c ...
  run_pickled``) as soon as the jobs it needs succeeded, at most K at once, each with
  ``OMP_NUM_THREADS = max(1, cores // K)`` so that K kernels do not fight over the cores;
  the log of each is ``<out>/jobs/<dataset>_<acc>/<notebook>.log``.
* ``--executor slurm``: one ``sbatch`` job per notebook and params file through submitit,
  ``--dependency=afterok:<the jobs it needs>`` (``--kill-on-invalid-dep=yes``: a job whose
  dependency failed is cancelled), then a summary job (``afterany`` of all) that writes
  ``<out>/summary.md``. Logs: ``<out>/jobs/slurm/<job id>_0_log.{out,err}``. A job that
  times out or is preempted is requeued by submitit (:meth:`NotebookJob.checkpoint`) and
  runs its notebook again: every finished stage returns at once, the running one resumes
  from its ``model.pt`` (the epoch in progress is lost).
* A job writes its result to ``<out>/jobs/<dataset>_<acc>/<notebook>.json``; the summary
  is built from those files (``summarise_results``). A job whose notebook failed then
  raises :class:`JobFailed`, so its process (its SLURM job) fails and ``afterok`` holds.
* ``--plan`` prints the graph and the estimated compute (:mod:`kdmri.tools.costs`) and
  runs nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdmri.errors import ConfigError
from kdmri.io import atomic_path, atomic_text
from kdmri.tools.batch import (
    Executor,
    Job,
    Result,
    dependencies,
    execute_job,
    papermill_execute,
    run_jobs,
    write_summary,
)
from kdmri.tools.names import NAME, OPTION, SLURM_NAMES, VALUE, checked

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def kernel_executor(kernel_name: str | None) -> Executor | None:
    """papermill with the Jupyter kernel ``kernel_name`` (``None``: the notebook's own)."""
    return functools.partial(papermill_execute, kernel_name=kernel_name) if kernel_name else None


def job_folder(job: Job, out: Path) -> Path:
    """``<out>/jobs/<dataset>_<acc>/``: a job's result, log and pickled callable."""
    return Path(out) / "jobs" / f"{job.cfg.dataset}_{job.cfg.acc}"


def result_path(job: Job, out: Path) -> Path:
    return job_folder(job, out) / f"{job.notebook.stem}.json"


def core_count() -> int:
    """Cores this process may use (the CPU affinity, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_job(slots: int, cores: int | None = None) -> int:
    """Torch threads of each of ``slots`` concurrent jobs: ``max(1, cores // slots)``."""
    return max(1, (cores or core_count()) // max(1, slots))


class JobFailed(RuntimeError):
    """A batch job whose notebook failed (its result JSON holds the error)."""


@dataclass
class NotebookJob:
    """One batch job as a picklable callable (a process of ours, or a submitit job).

    Sets the thread variables (``threads``; on SLURM ``SLURM_CPUS_PER_TASK`` when not
    given) before the kernel starts, so the kernel's torch uses that many threads, runs
    the notebook and writes its result JSON.
    """

    job: Job
    out: Path
    threads: int | None = None
    kernel_name: str | None = None
    execute: Executor | None = None

    def __call__(self) -> dict:
        """Run the notebook, write its result; a failed notebook raises :class:`JobFailed`
        after that, so the process (the SLURM job) fails and ``afterok`` dependants do not run."""
        threads = self.threads or os.environ.get("SLURM_CPUS_PER_TASK")
        if threads:
            os.environ.update({v: str(threads) for v in THREAD_VARIABLES})
        result_path(self.job, self.out).unlink(missing_ok=True)  # a requeued run's old result
        result = execute_job(self.job, self.execute or kernel_executor(self.kernel_name))
        record = {"ok": result.ok, "seconds": result.seconds, "peak_rss_mb": result.peak_rss_mb,
                  "error": result.error, "threads": int(threads) if threads else None,
                  "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                  "restarts": int(os.environ.get("SLURM_RESTART_COUNT", 0))}
        atomic_text(result_path(self.job, self.out), json.dumps(record, indent=2) + "\n")
        if not result.ok:
            raise JobFailed(f"{self.job.key}: {result.error} (notebook {self.job.output})")
        return record

    def checkpoint(self, *args, **kwargs):
        """submitit: on timeout or preemption, requeue this job unchanged (the notebook runs
        again; finished stages return at once, the running one resumes from model.pt)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def read_result(job: Job, out: Path) -> Result:
    """A job's :class:`Result` from its JSON; a missing file is a job that did not run."""
    path = result_path(job, out)
    if not path.is_file():
        return Result(job, False, 0.0, None, f"no result in {path}: the job did not run to the end "
                      "(a job it needs failed, it was cancelled, or it is still running)")
    rec = json.loads(path.read_text())
    return Result(job, bool(rec["ok"]), float(rec["seconds"]), rec.get("peak_rss_mb"), rec.get("error"))


def summarise_results(jobs: Sequence[Job], out: Path) -> tuple[list[Result], str, Path]:
    """Read every job's result and write ``<out>/summary.md`` / ``summary.json``."""
    results = [read_result(j, out) for j in jobs]
    text, path = write_summary(results, out)
    return results, text, path


@dataclass
class SummaryJob:
    """The last SLURM job: the merged summary of the batch."""

    jobs: list[Job]
    out: Path

    def __call__(self) -> str:
        return str(summarise_results(self.jobs, self.out)[2])


# =========================================================================== local


def process_starter(jobs: Sequence[Job], out: Path, threads: int, kernel_name: str | None = None):
    """``start(i)`` for :func:`kdmri.tools.batch.run_jobs`: job ``i`` in its own process."""
    import kdmri

    package_root = str(Path(kdmri.__file__).resolve().parent.parent)

    def start(i: int):
        job = jobs[i]
        folder = job_folder(job, out)
        folder.mkdir(parents=True, exist_ok=True)
        pkl, log_path = folder / f"{job.notebook.stem}.pkl", folder / f"{job.notebook.stem}.log"
        result_path(job, out).unlink(missing_ok=True)
        with atomic_path(pkl) as tmp:
            tmp.write_bytes(pickle.dumps(NotebookJob(job, out, threads, kernel_name)))
        env = {**os.environ, **{v: str(threads) for v in THREAD_VARIABLES},
               "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        log = open(log_path, "w")
        code = "import sys; from kdmri.tools.jobs import run_pickled; run_pickled(sys.argv[1])"
        proc = subprocess.Popen([sys.executable, "-c", code, str(pkl)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=package_root)

        def poll() -> Result | None:
            if proc.poll() is None:
                return None
            log.close()
            result = read_result(job, out)
            if not result_path(job, out).is_file():
                result.error = f"the job process exited with status {proc.returncode}; see {log_path}"
            return result

        return poll

    return start


def run_pickled(path: str | Path) -> None:
    """Entry of a local job process: run the pickled :class:`NotebookJob`."""
    with open(path, "rb") as fh:
        job = pickle.load(fh)
    try:
        record = job()
    except JobFailed as exc:  # the result JSON says why; the exit status says that it failed
        print(f"FAILED {exc}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(record))


def run_local(jobs: Sequence[Job], out: Path, slots: int = 1, execute: Executor | None = None,
              kernel_name: str | None = None, overrides: Mapping[str, Any] | None = None,
              progress: bool = True) -> list[Result]:
    """The local executor: ``slots == 1`` in this process, else one process per job."""
    if slots < 1:
        raise ConfigError(f"--jobs {slots}: expected at least 1")
    if slots == 1:
        return run_jobs(jobs, execute or kernel_executor(kernel_name), progress, overrides)
    if execute is not None:
        raise ConfigError("a custom executor runs in this process: use --jobs 1")
    start = process_starter(jobs, out, threads_per_job(slots), kernel_name)
    return run_jobs(jobs, None, progress, overrides, start=start, slots=slots)


# =========================================================================== SLURM


@dataclass
class SlurmOptions:
    """What each SLURM job asks for (``--partition``, ``--gpus-per-job``, ...)."""

    partition: str | None = None
    gpus_per_job: int = 1
    cpus_per_job: int = 8
    time: str = "24:00:00"
    mem: str | None = None
    account: str | None = None
    extra: dict | None = None  # any other sbatch option: {"qos": "high", "constraint": "a100"}

    def minutes(self) -> int:
        """``time`` (``[D-]HH:MM[:SS]`` or minutes) in minutes."""
        m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d+)(?::(\d+))?|(\d+)", self.time.strip())
        if not m:
            raise ConfigError(f"--time {self.time!r}: expected [D-]HH:MM[:SS] or minutes")
        if m.group(5):
            return int(m.group(5))
        days, hours, mins, secs = (int(g or 0) for g in m.groups()[:4])
        return days * 1440 + hours * 60 + mins + (1 if secs else 0)


def slurm_executor(folder: Path):
    """submitit's SLURM executor writing its files (pickles, logs) under ``folder``."""
    import submitit

    return submitit.SlurmExecutor(folder=str(folder / "%j"))


def job_name(job: Job) -> str:
    """The SLURM job name of ``job``: ``kdmri-<dataset>_<acc>-<notebook stem>``."""
    return f"kdmri-{job.key.replace('/', '-')}"


def check_slurm_names(jobs: Sequence[Job], options: SlurmOptions) -> None:
    """:class:`ConfigError` for a value that would reach the job scripts and is not a plain
    name (:mod:`kdmri.tools.names`): dataset, method, job name, partition, account, memory,
    the names and values of ``--slurm-option``."""
    for job in jobs:
        checked(f"{job.params}: dataset", job.cfg.dataset, NAME)
        checked(f"{job.params}: method", job.cfg.method, NAME)
        checked("SLURM job name", job_name(job), NAME)
    for key in ("partition", "account", "mem"):
        if getattr(options, key) is not None:
            checked(f"--{key}", getattr(options, key), SLURM_NAMES)
    for key, value in (options.extra or {}).items():
        checked("--slurm-option", key, OPTION)
        if value is not True:
            checked(f"--slurm-option {key}", value, VALUE)


def submit_slurm(jobs: Sequence[Job], out: Path, options: SlurmOptions, kernel_name: str | None = None,
                 executor=None) -> tuple[list[str], str]:
    """Submit every job with its ``afterok`` dependencies, then the summary job; returns
    (job ids in plan order, summary job id). Every name that reaches a job script is
    checked first (:func:`check_slurm_names`); submitit quotes each ``#SBATCH`` value."""
    from kdmri.tools.batch import write_resolved_params

    check_slurm_names(jobs, options)
    for job in {Path(j.parameters["params_file"]): j for j in jobs}.values():
        write_resolved_params(job)
    executor = executor or slurm_executor(Path(out) / "jobs" / "slurm")
    edges = dependencies(jobs)
    extra = {"kill-on-invalid-dep": "yes", "requeue": True, **(options.extra or {})}
    if options.account:
        extra["account"] = options.account
    ids: list[str] = []
    for i, job in enumerate(jobs):
        result_path(job, out).unlink(missing_ok=True)
        needs = ":".join(ids[d] for d in edges[i])
        executor.update_parameters(
            job_name=job_name(job), partition=options.partition,
            time=options.minutes(), gpus_per_node=options.gpus_per_job or None,
            cpus_per_task=options.cpus_per_job, mem=options.mem,
            dependency=f"afterok:{needs}" if needs else None, additional_parameters=extra)
        submitted = executor.submit(NotebookJob(job, Path(out), options.cpus_per_job, kernel_name))
        ids.append(str(submitted.job_id))
    executor.update_parameters(job_name="kdmri-summary", partition=options.partition, time=30,
                               gpus_per_node=None, cpus_per_task=1, mem=None,
                               dependency="afterany:" + ":".join(ids),
                               additional_parameters={k: v for k, v in extra.items()
                                                      if k != "kill-on-invalid-dep"})
    summary_id = str(executor.submit(SummaryJob(list(jobs), Path(out))).job_id)
    return ids, summary_id


# =========================================================================== command line


def _print_failures(results: Sequence[Result]) -> int:
    from kdmri.paths import project_relative

    failures = [r for r in results if not r.ok]
    if failures:
        print(f"\n{len(failures)} of {len(results)} notebook runs FAILED:")
        for r in failures:
            print(f"  {project_relative(r.job.output)} ({r.job.params}): {r.error}")
        return 1
    print(f"all {len(results)} notebook runs succeeded")
    return 0


def register_cli(sub) -> None:
    from kdmri.config import parse_override

    p = sub.add_parser("batch", help="execute the notebooks for each params file with papermill into "
                       "runs/<dataset>/acc_<acc>/: here (--jobs K at once) or on SLURM; --plan: the cost")
    p.add_argument("--params", nargs="+", required=True,
                   help="params YAML files (paths, or names in params/ such as demo_4x)")
    p.add_argument("--notebooks", nargs="+", default=None,
                   help="notebooks to run (default: every notebooks/NN_*.ipynb)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a Config field (or a notebook-only parameter) in every run")
    p.add_argument("--out", type=Path, default=None, help="runs folder (default: runs/)")
    p.add_argument("--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--executor", choices=("local", "slurm"), default="local",
                   help="local: this machine (default); slurm: one sbatch job per notebook (submitit)")
    p.add_argument("--jobs", type=int, default=1, metavar="K",
                   help="local: run up to K independent jobs at once, each in its own process "
                   "with max(1, cores // K) torch threads (default 1: in this process)")
    p.add_argument("--plan", action="store_true",
                   help="print the job graph and the estimated compute per job; run nothing")
    p.add_argument("--calibration-steps", type=int, default=20, metavar="N",
                   help="local runs and --plan: time the calibration step (kdmri.training.calibration) "
                   "N times at the start and end of the run and state the wall time with it (0: skip)")
    p.add_argument("--device-kind", default=None, choices=("cpu", "cuda"),
                   help="--plan: whose throughput to use (default: cuda with --gpus-per-job > 0 on "
                   "slurm, else cpu)")
    p.add_argument("--throughput", nargs="+", default=None, metavar="FILE",
                   help="--plan: benchmark result files (default benchmarks/results.md)")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="a seed study: the batch once per seed (seed overridden), kept apart: "
                   "experiments under <experiments_root or experiments/seeds>/seed<s>, notebooks "
                   "under <out>/seeds/seed<s> (kdmri.reporting.seeds compares them)")
    g = p.add_argument_group("slurm")
    g.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    g.add_argument("--gpus-per-job", type=int, default=1, help="GPUs of each job (default 1)")
    g.add_argument("--cpus-per-job", type=int, default=8, help="also the torch threads of each job")
    g.add_argument("--time", default="24:00:00", help="time limit of each job ([D-]HH:MM:SS)")
    g.add_argument("--mem", default=None, help="memory of each job, e.g. 64G")
    g.add_argument("--account", default=None, help="SLURM account to charge")
    g.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option for every job, e.g. qos=high, constraint=a100")

    def run_command(args) -> int:
        if args.seeds:
            from kdmri.paths import runs_dir
            from kdmri.tools.batch import seed_overrides

            base = dict(parse_override(o) for o in args.overrides)
            codes = []
            for seed in args.seeds:
                over = seed_overrides(base, seed)
                codes.append(run_one(argparse.Namespace(
                    **{**vars(args), "seeds": None, "overrides": [f"{k}={v}" for k, v in over.items()],
                       "out": Path(args.out or runs_dir()) / "seeds" / f"seed{seed}"})))
            return max(codes)
        return run_one(args)

    def run_one(args) -> int:
        from kdmri.config import FIELDS
        from kdmri.paths import runs_dir
        from kdmri.tools import costs
        from kdmri.tools.batch import plan
        from kdmri.tools.batch_params import describe_reuse

        overrides = dict(parse_override(o) for o in args.overrides)
        out = Path(args.out) if args.out is not None else runs_dir()
        jobs = plan(args.params, args.notebooks, overrides, out)
        print(describe_reuse(args.params, {k: v for k, v in overrides.items() if k in FIELDS}))
        if args.plan:
            device = args.device_kind or ("cuda" if args.executor == "slurm" and args.gpus_per_job else "cpu")
            calibration = None
            if device == "cpu" and args.calibration_steps > 0:  # the estimate is for this machine
                from kdmri.training.calibration import calibrate

                calibration = calibrate(args.calibration_steps,
                                        threads=threads_per_job(args.jobs) if args.jobs > 1 else None)
                print(calibration.line())
            estimates, notes = costs.estimate(jobs, device, args.throughput,
                                              calibration_ms=calibration.ms if calibration else None)
            print(costs.format_plan(estimates, notes, device))
            return 0
        if args.executor == "slurm":
            extra = dict(o.split("=", 1) if "=" in o else (o, True) for o in args.slurm_option)
            options = SlurmOptions(args.partition, args.gpus_per_job, args.cpus_per_job, args.time,
                                   args.mem, args.account, extra)
            ids, summary = submit_slurm(jobs, out, options, args.kernel)
            for job, jid in zip(jobs, ids):
                print(f"{jid:>10}  {job.key}")
            print(f"{summary:>10}  summary -> {out / 'summary.md'}  (logs: {out / 'jobs' / 'slurm'})")
            return 0
        def run():
            return run_local(jobs, out, args.jobs, kernel_name=args.kernel, overrides=overrides,
                             progress=not args.no_progress)

        timing = None
        if args.calibration_steps > 0:  # with the threads each notebook kernel gets
            from kdmri.training.calibration import timed

            results, timing = timed(run, threads_per_job(args.jobs) if args.jobs > 1 else None,
                                    args.calibration_steps)
        else:
            results = run()
        text, path = write_summary(results, out, timing)
        print()
        print(text)
        print(f"\nsummary written to {path}")
        if timing is not None:
            print("\n".join(timing.lines()))
        return _print_failures(results)

    p.set_defaults(func=run_command)

