"""Batch runs: every notebook for every params file, executed with papermill.

``python -m kdmri batch --params params/demo_4x.yaml [more.yaml ...] [--notebooks ...]``

* Notebooks default to every ``notebooks/NN_*.ipynb``. Jobs run in plan order (params
  files as given, notebooks by number) as far as the job graph of
  :mod:`kdmri.tools.graph` allows: a job runs after the jobs it needs (03 before 04...).
  Parallel and SLURM execution, and the cost plan: :mod:`kdmri.tools.jobs`,
  :mod:`kdmri.tools.costs`.
* Each run writes ``runs/<dataset>/acc_<acc>/<notebook>.ipynb`` (executed, also when it
  fails) next to ``params.yaml``, the resolved configuration of that params file.
* How values reach a notebook (nothing is dropped silently):

  1. the params YAML is merged with the ``--set`` overrides that name Config fields and
     validated (:func:`kdmri.config.load_config`: unknown keys are errors); the resolved
     configuration is written to ``runs/<dataset>/acc_<acc>/params.yaml``;
  2. every notebook gets ``params_file`` = that file, so YAML keys that are not notebook
     parameters still reach its Config (``nb.notebook_config(params_file, ...)``);
  3. every notebook parameter that is a Config field is set to the resolved value, so the
     notebook's quick-run defaults never leak into a batch run; ``--set`` keys that are
     not Config fields go to the notebooks that declare them as parameters.

  Before anything runs, the parameter names of every notebook are read with
  ``papermill.inspect_notebook``; a notebook without ``params_file``, a ``--set`` key that
  no notebook and no Config knows, a bad YAML key, or two params files that would write
  the same run folder stop the batch with one message listing every problem.
* A failing notebook stops only the jobs that need it (they are reported as not run);
  failures are listed at the end and the command exits with status 1.
* The peak resident memory of each notebook's kernel is sampled (psutil) and reported.
* ``runs/summary.md`` (and ``summary.json``) gets the run table and, per params file, the
  results table of every evaluated model; a batch merges its rows into the summary of the
  earlier batches (:mod:`kdmri.tools.summary`).

Notebook files themselves (discovery, conventions, ``python -m kdmri notebooks ...``) are
:mod:`kdmri.tools.notebooks`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kdmri.config import FIELDS, Config, load_config
from kdmri.config import notebook_parameters as notebook_parameters_of
from kdmri.errors import ConfigError
from kdmri.io import atomic_text
from kdmri.paths import experiments_dir, runs_dir
from kdmri.tools.batch_params import executed_notebook_env, notebook_runs_for, resolved_params
from kdmri.tools.graph import job_edges, schedule
from kdmri.tools.notebooks import discover_notebooks, order_notebooks
from kdmri.tools.summary import write_summary

Executor = Callable[[Path, Path, dict, Path], None]
"""``execute(notebook, output, parameters, cwd)``: run one notebook (papermill by default)."""


# =========================================================================== planning


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """The parameters of a notebook (``papermill.inspect_notebook``): ``{name: info}``."""
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


def run_folder(cfg: Config, out: Path) -> Path:
    """Where one params file's executed notebooks go: ``<out>/<dataset>/acc_<acc>``; for a
    params file whose experiments live in a subfolder of experiments/ (the quick profile's
    ``experiments/quick``), the same subfolder under ``<out>`` (``runs/quick/...``), so its
    runs stay apart from the full runs as its experiments do."""
    try:
        sub = cfg.experiments_path.resolve().relative_to(experiments_dir().resolve())
    except ValueError:
        sub = Path()
    if sub.parts and Path(out).parts[-len(sub.parts):] == sub.parts:  # <out> is already that subfolder
        sub = Path()
    return Path(out) / sub / cfg.dataset / f"acc_{cfg.acc}"


@dataclass
class Job:
    """One notebook executed for one params file."""

    params: str  # the params file as given
    cfg: Config
    notebook: Path
    output: Path
    parameters: dict

    @property
    def key(self) -> str:
        """``<dataset>_<acc>/<notebook stem>``: names the job (logs, SLURM job names)."""
        return f"{self.cfg.dataset}_{self.cfg.acc}/{self.notebook.stem}"


@dataclass
class Result:
    job: Job
    ok: bool
    seconds: float
    peak_rss_mb: float | None
    error: str | None = None


@dataclass
class BatchReport:
    results: list[Result] = field(default_factory=list)
    summary: str = ""
    summary_path: Path | None = None

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failures


def plan(params_files: Sequence[str | Path], notebooks: Sequence[str | Path] | None = None,
         overrides: Mapping[str, Any] | None = None, out: str | Path | None = None,
         inspect: Callable[[Path], Mapping[str, Any]] = notebook_parameters) -> list[Job]:
    """The jobs of a batch, validated (see the module docstring); raises
    :class:`ConfigError` listing every problem before anything runs."""
    if not params_files:
        raise ConfigError("batch: expected at least one params file (--params)")
    out = Path(out) if out is not None else runs_dir()
    nbs = order_notebooks(notebooks) if notebooks else discover_notebooks()
    overrides = dict(overrides or {})
    config_over = {k: v for k, v in overrides.items() if k in FIELDS}
    notebook_over = {k: v for k, v in overrides.items() if k not in FIELDS}
    problems: list[str] = []
    names: dict[Path, set[str]] = {}
    for nb in nbs:
        if not nb.is_file():
            problems.append(f"{nb}: notebook not found")
            continue
        try:
            names[nb] = set(inspect(nb))
        except Exception as exc:
            problems.append(f"{nb}: cannot read its parameters ({exc})")
            continue
        if "params_file" not in names[nb]:
            problems.append(f"{nb}: no `params_file` in a cell tagged 'parameters' (found "
                            f"{sorted(names[nb]) or 'no parameters'}); the batch passes the params "
                            "YAML through it")
    for key in notebook_over:
        if not any(key in n for n in names.values()):
            problems.append(f"--set {key}: neither a Config field nor a parameter of any notebook")
    configs: list[tuple[str, Config]] = []
    folders: dict[Path, str] = {}
    file_notebook_params: dict[str, dict[str, Any]] = {}
    for pf in params_files:
        try:
            cfg = load_config(pf, config_over)
            file_notebook_params[str(pf)] = notebook_parameters_of(pf)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        for key in file_notebook_params[str(pf)]:  # a params file serves every notebook, run or not
            if not any(key in n for n in names.values()) and key not in _all_notebook_parameters(inspect):
                problems.append(f"{pf}: notebook_parameters.{key} is not a parameter of any notebook")
        folder = run_folder(cfg, out).resolve()
        if folder in folders:
            problems.append(f"{pf} and {folders[folder]}: both run {cfg.dataset} {cfg.acc} into {folder}; "
                            "run them in separate batches (--out)")
        folders[folder] = str(pf)
        configs.append((str(pf), cfg))
    if problems:
        raise ConfigError("batch not started:\n  - " + "\n  - ".join(problems))
    jobs = []
    for pf, cfg in configs:
        folder = run_folder(cfg, out).resolve()
        values = cfg.to_dict()
        for nb in (n for n in nbs if notebook_runs_for(n, cfg)):
            params = {"params_file": str(folder / "params.yaml")}
            params.update({k: values[k] for k in sorted(names[nb]) if k in FIELDS})
            params.update({k: v for k, v in file_notebook_params[pf].items() if k in names[nb]})
            params.update({k: v for k, v in notebook_over.items() if k in names[nb]})
            jobs.append(Job(pf, cfg, nb, folder / nb.name, params))
    return jobs


def _all_notebook_parameters(inspect) -> set[str]:
    """Parameter names of every numbered notebook in notebooks/."""
    found: set[str] = set()
    for nb in discover_notebooks():
        try:
            found |= set(inspect(nb))
        except Exception:  # an unreadable notebook is reported when it is selected
            continue
    return found


def write_resolved_params(job: Job, overrides: Mapping[str, Any] | None = None) -> Path:
    """Write the resolved configuration that ``job.parameters["params_file"]`` names."""
    path = Path(job.parameters["params_file"])
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Resolved by `python -m kdmri batch` from {job.params}"
              + (f" with --set {dict(overrides)}" if overrides else "") + "\n")
    atomic_text(path, header + yaml.safe_dump(resolved_params(job, overrides), sort_keys=True))
    return path


# =========================================================================== execution


class PeakRSS:
    """Context manager sampling the peak resident memory (MB) of this process's child
    processes (the notebook kernel) while it is active; ``peak_mb`` stays ``None`` where
    psutil is missing. On Linux each process's high-water mark (``VmHWM``) is read, so a
    short peak between two samples is not missed."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peaks: dict[int, int] = {}

    @staticmethod
    def _process_peak(proc) -> int:
        try:
            with open(f"/proc/{proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return proc.memory_info().rss

    def _sample(self, me) -> None:
        import psutil

        for child in me.children(recursive=True):
            try:
                self._peaks[child.pid] = max(self._peaks.get(child.pid, 0), self._process_peak(child))
            except (psutil.Error, ValueError):
                continue
        if self._peaks:
            self.peak_mb = max(self.peak_mb or 0.0, sum(self._peaks.values()) / 2**20)

    def _loop(self, me) -> None:
        while not self._stop.wait(self.interval):
            self._sample(me)

    def __enter__(self) -> PeakRSS:
        try:
            import psutil
        except ImportError:
            return self
        me = psutil.Process()
        self._thread = threading.Thread(target=self._loop, args=(me,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def papermill_execute(notebook: Path, output: Path, parameters: dict, cwd: Path,
                      kernel_name: str | None = None) -> None:
    """Execute ``notebook`` into ``output`` with papermill (the output is written also
    when a cell fails; the error is raised). The cells' output streams and kdmri's progress
    bars (:mod:`kdmri.progress`) go to the job log ``output.with_suffix(".log")``."""
    import papermill

    log_path = output.with_suffix(".log")
    log_path.write_text("")  # appended to by papermill and by the kernel's progress bars
    with executed_notebook_env(notebook, log_path), open(log_path, "a") as log:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, cwd=str(cwd),
                                   kernel_name=kernel_name, progress_bar=False, log_output=True,
                                   stdout_file=log, stderr_file=log)


def describe_error(exc: BaseException) -> str:
    """One line for a failed notebook: the exception raised in the cell, if papermill says."""
    ename = getattr(exc, "ename", None)
    if ename:
        evalue = str(getattr(exc, "evalue", "")).strip().splitlines()
        where = getattr(exc, "exec_count", None)
        return f"{ename}: {evalue[0] if evalue else ''}" + (f" (cell [{where}])" if where else "")
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def execute_job(job: Job, execute: Executor | None = None) -> Result:
    """Run one job (its resolved params file must exist): papermill by default; a failure
    is recorded in the result, not raised."""
    execute = execute or papermill_execute
    job.output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    error = None
    with PeakRSS() as mem:
        try:
            execute(job.notebook, job.output, dict(job.parameters), job.notebook.resolve().parent)
        except Exception as exc:  # a failing notebook must not stop the batch
            error = describe_error(exc)
    return Result(job, error is None, round(time.perf_counter() - t0, 1), mem.peak_mb, error)


def dependencies(jobs: Sequence[Job]) -> list[list[int]]:
    """The job graph (:mod:`kdmri.tools.graph`): for each job, the jobs it runs after."""
    groups: dict[str, tuple[str, Path, list[str]]] = {}
    for job in jobs:
        groups.setdefault(job.params, (job.params, job.cfg.data_path, []))[2].append(job.notebook.stem)
    return job_edges(list(groups.values()))


def skipped_result(job: Job, needs: Sequence[Job]) -> Result:
    """The result of a job not run because a job it needs did not succeed."""
    names = ", ".join(j.notebook.name for j in needs)
    return Result(job, False, 0.0, None, f"not run: needs {names}, which did not succeed")


def run_jobs(jobs: Sequence[Job], execute: Executor | None = None, progress: bool = True,
             overrides: Mapping[str, Any] | None = None,
             start: Callable[[int], Callable[[], Result | None]] | None = None,
             slots: int = 1) -> list[Result]:
    """Run ``jobs`` in the order of their graph, ``slots`` at a time; a failure is recorded,
    the jobs that need it are not run (their result says so) and the others go on.
    ``start(i)`` launches job ``i`` elsewhere (a process) and returns its ``poll``; by
    default each job runs in this process."""
    from tqdm.auto import tqdm

    for job in {Path(j.parameters["params_file"]): j for j in jobs}.values():
        write_resolved_params(job, overrides)
    if start is None:
        def start(i):
            result = execute_job(jobs[i], execute)
            return lambda: result
    bar = tqdm(total=len(jobs), desc="notebooks", unit="nb", disable=not progress, file=sys.stdout)

    def done(i: int, result: Result) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{result.job.cfg.dataset} {result.job.cfg.acc} {result.job.notebook.name}")
        if not result.ok:
            bar.write(f"FAILED {result.job.output}: {result.error}")

    edges = dependencies(jobs)
    results = schedule(len(jobs), edges, slots, start, lambda r: r.ok,
                       lambda i, failed: skipped_result(jobs[i], [jobs[f] for f in failed]), done)
    bar.close()
    return results


def run_batch(params_files: Sequence[str | Path], notebooks: Sequence[str | Path] | None = None,
              overrides: Mapping[str, Any] | None = None, out: str | Path | None = None,
              execute: Executor | None = None, progress: bool = True,
              inspect: Callable[[Path], Mapping[str, Any]] = notebook_parameters) -> BatchReport:
    """Plan (validate), run every job in this process, write ``<out>/summary.md`` and
    ``summary.json`` (parallel jobs and SLURM: :mod:`kdmri.tools.jobs`)."""
    out = Path(out) if out is not None else runs_dir()
    jobs = plan(params_files, notebooks, overrides, out, inspect)
    results = run_jobs(jobs, execute, progress, overrides)
    text, path = write_summary(results, out)
    return BatchReport(results, text, path)


def seed_overrides(overrides: Mapping[str, Any], seed: int) -> dict:
    """``overrides`` for one seed of a seed study: ``seed`` set and the experiments kept
    apart under ``<experiments_root or experiments/seeds>/seed<seed>``."""
    base = overrides.get("experiments_root") or "experiments/seeds"
    return {**overrides, "seed": int(seed), "experiments_root": f"{base}/seed{int(seed)}"}
