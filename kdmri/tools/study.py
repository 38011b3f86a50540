"""The study: the demo protocol trained to convergence over seeds (``make study``;
``python -m kdmri study [--plan] [--root R] [--seeds ...] [--jobs K]``).

The protocol is data (:mod:`kdmri.training.study`); docs/RESULTS.md states it. This module
prepares the study's data folder, runs the pilot (the epochs of each stage kind), runs the
units (one process each, ``--jobs`` at a time, in the order their needs allow), states the
cost before it starts (:func:`plan`) and records what each unit took. Everything resumes:
a finished unit is skipped (``<root>/units/<unit>.json``), an interrupted stage resumes from
its ``model.pt`` (the engine's exact resume), a pilot run from its last look at the rule.

Layout of ``<root>`` (``--root``, else ``$KDMRI_STUDY_ROOT``, else ``experiments/study``)::

    study.json            the settings (fixed at the first run)
    data/                 train (links), validation (held-out training volumes), slab, shift
    pilot/                the pilot's experiments (seed 0); pilot/<kind>.json: its rule trace
    epochs.json           the epochs the pilot chose per stage kind
    seeds/seed<s>/demo/acc_<acc>/<method>_<role>/   one seed's runs (copyable as a unit):
                          model.pt, best_model.pt, train_log.csv, config.yaml,
                          test_slab/ and test_shift/ (metrics.csv, report.json)
    units/<unit>.json     what each finished unit ran and took; logs/<unit>.log
    calibrations.json     the calibration of each start of the study (appended, never rewritten)
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py

from kdmri.config import Config, load_config
from kdmri.data import FS_KEY, list_volumes
from kdmri.errors import ConfigError
from kdmri.evaluation.evaluate import evaluate, report_dir
from kdmri.io import atomic_text
from kdmri.paths import datasets_dir, project_root
from kdmri.tools.srselect import link_volumes, split_training
from kdmri.training import study as protocol
from kdmri.training import train
from kdmri.training.calibration import Calibration, calibrate, cpu_model
from kdmri.training.study import (  # noqa: F401  (the study folder's reading, re-exported for the CLI and tests)
    ROOT_ENV,
    Settings,
    Unit,
    base_config,
    chosen_epochs,
    is_done,
    load_settings,
    run_config,
    study_root,
    units_of,
)

#: Seconds per training step of each stage kind, in units of the calibration step (the fp32
#: DC-CNN teacher at 96 x 96, batch 4), measured with bf16 + channels-last in one process
#: (2026, this 2-core machine under load, 1 thread; docs/RESULTS.md). SR: 32 x 32 patches, batch 16.
STEP_COST: dict[str, float] = {"teacher": 0.37, "student": 0.29, "feature": 0.42, "kd": 0.21,
                               "sft-teacher": 0.74, "sr-teacher": 0.12, "sr-student": 0.07,
                               "sr-feature": 0.12, "sr-kd": 0.08}


def prepare_data(root: Path, settings: Settings) -> Path:
    """``<root>/data``: the selection split of the training volumes and the two test sets."""
    source = Path(settings.source) if settings.source else datasets_dir() / "demo"
    cfg = load_config(settings.params.format(acc="4x"), {**settings.overrides, "data_root": str(source)})
    data = split_training(cfg, root / "data")
    link_volumes(list_volumes(source / "validation"), data / "slab")
    link_volumes(list_volumes(source / "shift"), data / "shift")
    return data


# ---------------------------------------------------------------- running


def _history(cfg: Config, stage: str) -> list[dict]:
    import pandas as pd

    from kdmri.training.stages import get_stage

    log = get_stage(stage).experiment(get_stage(stage).configure(cfg)) / "train_log.csv"
    return pd.read_csv(log).to_dict("records") if log.is_file() else []


def run_pilot_run(root: Path, settings: Settings, cfg: Config, run: protocol.Run) -> dict:
    """Train one pilot run :data:`~kdmri.training.study.PILOT_CHUNK` epochs at a time until
    the rule fires on the held-out score or the cap is reached; ``<root>/pilot/<kind>.json``."""
    from kdmri.training.stages import get_stage

    objective = get_stage(run.stage).validate == "objective"
    history = _history(cfg, run.stage)
    while True:
        scores = [protocol.score(r, objective) for r in history]
        fired = protocol.converged_epoch(scores, settings.window, settings.delta_db)
        if fired is not None or len(history) >= run.epochs:
            break
        train(cfg, run.stage, stop_after=len(history) + protocol.PILOT_CHUNK)
        history = _history(cfg, run.stage)
    record = {"chosen": fired or run.epochs, "fired": fired is not None, "cap": run.epochs,
              "trained": len(history), "score": protocol.SCORE_NAMES[objective],
              "scores": [round(s, 4) for s in scores]}
    atomic_text(root / "pilot" / f"{run.stage}.json", json.dumps(record, indent=2))
    return record


def _write_epochs(root: Path, settings: Settings) -> None:
    records = {}
    for kind in protocol.pilot_kinds(settings):
        path = root / "pilot" / f"{kind}.json"
        if not path.is_file():
            return
        records[kind] = json.loads(path.read_text())
    atomic_text(root / "epochs.json", json.dumps(records, indent=2))


def run_unit(root: Path, settings: Settings, name: str) -> dict:
    """Run unit ``name`` in this process (resuming); writes ``<root>/units/<name>.json``."""
    units = {u.name: u for u in units_of(root, settings)}
    if name not in units:
        raise ConfigError(f"unit {name!r}: not a unit of the study in {root}")
    unit = units[name]
    missing = sorted({r.kind for r in unit.runs} - set(chosen_epochs(root) or ()))
    if not unit.pilot and missing:
        raise ConfigError(f"unit {name}: the pilot has not chosen the epochs of {', '.join(missing)} yet "
                          f"(expected {root / 'pilot'}/<kind>.json; the pilot units run first)")
    base = base_config(root, settings, unit)
    t0 = time.perf_counter()
    for run in unit.runs:
        cfg = run_config(base, run)
        if unit.pilot:
            run_pilot_run(root, settings, cfg, run)
            continue
        exp = train(cfg, run.stage)
        for split in protocol.TEST_SETS if run.evaluate else ():
            if not (report_dir(exp, split) / "report.json").is_file():
                evaluate(cfg, run.stage, save_reconstructions=False, split=split)
    for stage in unit.baselines:
        for split in protocol.TEST_SETS:
            evaluate(base, stage, save_reconstructions=False, split=split)
    if unit.pilot:
        _write_epochs(root, settings)
    record = {"unit": name, "ok": True, "seconds_this_session": round(time.perf_counter() - t0, 1),
              "runs": [{"stage": r.stage, **r.changes, "epochs": r.epochs, "lr_step": r.lr_step}
                       for r in unit.runs]}
    atomic_text(root / "units" / f"{name}.json", json.dumps(record, indent=2))
    return record


def with_needs(units: list[Unit], names) -> set[str]:
    """``names`` and every unit they need, transitively (a :class:`ConfigError` names an
    unknown unit)."""
    index = {u.name: u for u in units}
    out, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in index:
            raise ConfigError(f"unit {name!r}: not a unit of the study (units: {', '.join(index)})")
        if name not in out:
            out.add(name)
            todo.extend(index[name].needs)
    return out


def seed_pilot(root: Path, settings: Settings, epochs: dict[str, dict], source: str) -> list[str]:
    """Record pilot epochs chosen elsewhere (another study's ``epochs.json``, e.g. the
    published ``summary.json``) as this study's pilot, so that no pilot runs: writes
    ``<root>/pilot/<kind>.json`` for every kind in ``epochs`` (``{kind: {"chosen": E, ...}}``),
    marks each pilot unit whose kinds are all seeded as done, and ``epochs.json`` once every
    kind is. A kind this study's pilot already chose differently is an error. Returns the
    kinds seeded."""
    seeded = []
    for kind in protocol.pilot_kinds(settings):
        if kind not in epochs:
            continue
        chosen = int(epochs[kind]["chosen"])
        path = root / "pilot" / f"{kind}.json"
        if path.is_file():
            old = json.loads(path.read_text())
            if int(old["chosen"]) != chosen:
                raise ConfigError(f"{path}: this study's pilot chose {old['chosen']} epochs for {kind}, "
                                  f"{source} says {chosen}; use another --root")
        else:
            record = {k: epochs[kind][k] for k in ("chosen", "fired", "cap", "trained") if k in epochs[kind]}
            atomic_text(path, json.dumps({**record, "chosen": chosen, "seeded_from": source}, indent=2))
        seeded.append(kind)
    for unit in protocol.pilot_units(settings):
        if all(r.stage in seeded for r in unit.runs) and not is_done(root, unit.name):
            atomic_text(root / "units" / f"{unit.name}.json",
                        json.dumps({"unit": unit.name, "ok": True, "seeded_from": source}, indent=2))
    _write_epochs(root, settings)
    return seeded


def _start_process(root: Path, name: str, threads: int):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(project_root()), os.environ.get("PYTHONPATH")]))}
    (root / "logs").mkdir(parents=True, exist_ok=True)
    log = open(root / "logs" / f"{name}.log", "a")
    proc = subprocess.Popen([sys.executable, "-m", "kdmri", "study", "--root", str(root), "--unit", name],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=project_root())

    def poll():
        code = proc.poll()
        if code is None:
            return None
        log.close()
        return {"unit": name, "ok": code == 0 and is_done(root, name), "code": code}
    return poll


def record_calibration(root: Path, calibration) -> list[dict]:
    """Append this start's calibration to ``<root>/calibrations.json`` (time, ms, cpu,
    threads, and whether it was measured or given with ``--calibration``); every record."""
    from datetime import datetime, timezone

    path = root / "calibrations.json"
    records = json.loads(path.read_text()) if path.is_file() else []
    entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if isinstance(calibration, Calibration):
        entry.update(ms=calibration.ms, cpu=calibration.cpu, threads=calibration.threads, source="measured")
    else:
        entry.update(ms=round(float(calibration) * 1000, 2), cpu=cpu_model(), threads=None, source="given")
    records.append(entry)
    atomic_text(path, json.dumps(records, indent=1))
    return records


def run_study(root: Path, settings: Settings, seeds=None, jobs: int = 1, in_process: bool = False,
              verbose: bool = True, calibration=None, only=None) -> list[dict]:
    """Every unit not yet done (of ``seeds``, with the pilot; of ``only``, a collection of unit
    names, when given), ``jobs`` processes at a time (``in_process``: one after another in
    this process, for tests and notebooks). ``calibration`` (a
    :class:`~kdmri.training.calibration.Calibration`, or seconds given by the user) is
    recorded first (:func:`record_calibration`)."""
    from kdmri.tools.graph import schedule
    from kdmri.tools.jobs import threads_per_job

    if calibration is not None:
        record_calibration(root, calibration)
    prepare_data(root, settings)
    todo = [u for u in units_of(root, settings)
            if not is_done(root, u.name) and (u.pilot or seeds is None or u.seed in seeds)
            and (only is None or u.name in only)]
    index = {u.name: i for i, u in enumerate(todo)}
    edges = [[index[n] for n in u.needs if n in index] for u in todo]
    threads = threads_per_job(jobs)

    def start(i):
        if in_process:
            record = run_unit(root, settings, todo[i].name)
            return lambda: record
        return _start_process(root, todo[i].name, threads)

    def done(i, result):
        if verbose:
            print(f"{'done' if result['ok'] else 'FAILED'} {todo[i].name}"
                  + ("" if result["ok"] else f" (log: {root / 'logs' / todo[i].name}.log)"), flush=True)
    return schedule(len(todo), edges, jobs, start, lambda r: r["ok"],
                    lambda i, failed: {"unit": todo[i].name, "ok": False, "skipped": True}, done)


# ---------------------------------------------------------------- cost


def train_slices(root: Path, settings: Settings) -> tuple[int, int]:
    """(training slices, held-out slices) of the study's data folder (``max_*_slices`` applied)."""
    counts = []
    for split in ("train", "validation"):
        n = 0
        for f in list_volumes(root / "data" / split):
            with h5py.File(f, "r") as fh:
                n += fh[FS_KEY].shape[2]
        counts.append(n)
    limit = settings.overrides.get("max_train_slices"), settings.overrides.get("max_val_slices")
    return tuple(min(c, lim) if lim else c for c, lim in zip(counts, limit))


def epoch_cost(kind: str, batch: int, n_train: int, n_val: int) -> float:
    """Calibration steps of one epoch of ``kind``: its training steps, and the held-out
    validation at a third of a step per batch (whole slices: 9 patches' worth for SR)."""
    step = STEP_COST[kind]
    val = math.ceil(n_val / batch) * step / 3 * (9 if kind.startswith("sr-") else 1)
    return math.ceil(n_train / batch) * step + val


def precision_warning(root: Path, settings: Settings) -> str | None:
    """A line for the plan when this machine trains the study's params in fp32 although
    :data:`STEP_COST` holds bf16 + channels-last figures (``precision: auto`` on a CPU
    without bf16 kernels): there a step costs 1.8-2.9x as much relative to the calibration
    (teacher 1.07, student 0.52, KD 0.44 calibration steps with channels-last on an AMD EPYC,
    AVX2; benchmarks/fastpath_avx2.md), so the plan understates by about that much."""
    from kdmri.training.strategy import resolve_precision

    cfg = load_config(settings.params.format(acc="4x"), {"progress": False, **settings.overrides})
    used = resolve_precision(cfg.precision, cfg.torch_device())
    if used == "bf16" or cfg.precision == "fp32":
        return None
    return (f"note: precision {cfg.precision!r} is {used} on this machine; the step costs are bf16 + "
            "channels-last figures, and here a step costs 1.8-2.9x as much (benchmarks/fastpath_avx2.md): "
            "the times below understate by about that much")


def plan(root: Path, settings: Settings, calibration: float, seeds=None, only=None) -> tuple[str, float]:
    """The cost plan as text and its total in hours (units not yet done, of ``seeds``; of
    ``only``, a collection of unit names, when given)."""
    n_train, n_val = train_slices(root, settings)
    chosen = chosen_epochs(root)
    lines = [f"study in {root}", f"calibration: {calibration * 1000:.0f} ms per fp32 teacher step "
             "(96 x 96, batch 4)", f"training slices {n_train}, held-out (selection) slices {n_val}",
             "epochs: " + ("chosen by the pilot " + json.dumps(chosen) if chosen else
                           "the pilot has not run: every run at its cap (an upper bound)")
             + ("; the other kinds at their caps" if chosen and set(chosen) != set(settings.caps)
                else ""), ""]
    warning = precision_warning(root, settings)
    lines += [warning, ""] if warning else []
    total = 0.0
    for unit in units_of(root, settings):
        if not unit.pilot and seeds is not None and unit.seed not in seeds:
            continue
        if only is not None and unit.name not in only:
            continue
        cost = sum(r.epochs * epoch_cost(r.kind, int(r.changes.get("batch_size", 4)), n_train, n_val)
                   for r in unit.runs) * calibration
        done = is_done(root, unit.name)
        total += 0 if done else cost
        runs = ", ".join(f"{r.changes.get('method', '')}{'/' if r.changes.get('method') else ''}{r.stage} "
                         f"x{r.epochs}" for r in unit.runs)
        lines.append(f"{unit.name:24s} {'done' if done else f'{cost / 60:6.1f} min'}  {runs}")
    lines += ["", f"to run: {total / 3600:.2f} h of one process at this calibration "
              "(two processes on two cores: see docs/RESULTS.md)"]
    return "\n".join(lines), total / 3600


def measured(root: Path) -> float:
    """Hours of training the study has measured so far (``seconds`` of every train_log.csv)."""
    import pandas as pd

    return sum(float(pd.read_csv(p)["seconds"].sum()) for p in root.rglob("train_log.csv")) / 3600


def register_cli(sub) -> None:
    p = sub.add_parser("study", help="the demo protocol trained to convergence over seeds "
                       "(docs/RESULTS.md): plan, run, resume")
    p.add_argument("--root", default=None, help=f"study folder (default ${ROOT_ENV}, else experiments/study)")
    p.add_argument("--plan", action="store_true", help="print the cost plan and stop")
    p.add_argument("--seeds", type=int, nargs="*", default=None, help="run only these seeds (and the pilot)")
    p.add_argument("--jobs", type=int, default=1, help="units run at once, one process each")
    p.add_argument("--calibration", type=float, default=None,
                   help="seconds of the calibration step (default: measured now)")
    p.add_argument("--unit", default=None,
                   help="run one unit of the plan by name (what --jobs starts in each process)")

    def run(args) -> int:
        root = study_root(args.root)
        root.mkdir(parents=True, exist_ok=True)
        settings = load_settings(root)
        if args.unit:
            run_unit(root, settings, args.unit)
            return 0
        prepare_data(root, settings)
        # the machine's calibration step (kdmri.training.calibration: the fp32 DC-CNN teacher
        # training step at 96 x 96, batch 4, median of 20), recorded by run_study
        calibration = args.calibration or calibrate()
        seconds = calibration if args.calibration else calibration.ms / 1e3
        text, _ = plan(root, settings, seconds, args.seeds)
        print(text, flush=True)
        if args.plan:
            return 0
        results = run_study(root, settings, args.seeds, max(1, args.jobs), calibration=calibration)
        print(f"measured training time so far: {measured(root):.2f} h", flush=True)
        return 0 if all(r["ok"] for r in results) else 1

    p.set_defaults(func=run)

    r = sub.add_parser("study-report", help="the study's results (every comparison over seeds, on "
                       "both test sets; figures) into the results part of docs/RESULTS.md")
    r.add_argument("--root", default=None, help=f"study folder (default ${ROOT_ENV}, else experiments/study)")
    r.add_argument("--out", type=Path, default=project_root() / "docs" / "RESULTS.md",
                   help="the results file whose generated part is rewritten (default docs/RESULTS.md)")
    r.add_argument("--min-seeds", type=int, default=3, help="seeds a comparison needs to be shown")

    def report(args) -> int:
        from kdmri.reporting.study import write_results

        print(write_results(study_root(args.root), args.out, args.min_seeds))
        return 0

    r.set_defaults(func=report)
