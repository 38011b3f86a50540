"""The study's figures, drawn from DataFrames, so that ``study-report`` (from the study folder,
:mod:`kdmri.reporting.study`) and notebook 08 (from the published ``summary.json``) draw the
same figures with the same functions:

* :func:`psnr_vs_acceleration`: PSNR against the acceleration of teacher, student, KD student,
  equal-compute control and ZF, mean over seeds with its 95 % t interval, one panel per test set;
* :func:`psnr_per_model`: every model of one acceleration (all families), each seed a point,
  beside the mean over seeds and its interval, one panel per test set;
* :func:`learning_curves`: the held-out score per epoch of every run, one panel per stage
  kind, the learning-rate drop and the selected epoch marked (the pilot's curves too: no drop,
  its chosen epoch marked).

Inputs: ``values`` has columns ``test, seed, acc, model, psnr`` (one row per seed and model:
the mean PSNR over the test set's slices); ``curves`` has ``kind, acc, model, seed, epoch,
score, score_name, lr_step, selected`` (one row per epoch; ``lr_step`` NaN for a run at a
constant rate).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kdmri.io import atomic_path
from kdmri.metrics import paired_difference
from kdmri.reporting.statfigs import palette
from kdmri.reporting.tables import acc_key

#: The models of the acceleration figure, ``(experiment, label)``; labels as the papers' tables.
MAIN: tuple[tuple[str, str], ...] = (("kdmri_teacher", "Teacher"), ("kdmri_student", "Student"),
                                     ("kdmri_kd", "KD student"), ("ctl_student", "Equal-compute control"),
                                     ("kdmri_zf", "ZF"))
LABELS = dict(MAIN)
#: The panel order of the test sets.
TESTS = ("slab", "shift")
VALUE_COLUMNS = ("test", "seed", "acc", "model", "psnr")
CURVE_COLUMNS = ("kind", "acc", "model", "seed", "epoch", "score", "score_name", "lr_step", "selected")


def _check(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; expected {list(columns)} "
                         f"(got {list(frame.columns)})")


def _tests(values: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(values["test"]))
    return [t for t in TESTS if t in present] + [t for t in present if t not in TESTS]


def model_intervals(values: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per (test, acc, model): ``seeds``, the ``mean`` over seeds of the per-seed PSNR
    and the Student-t interval of that mean (``ci_low``, ``ci_high``; NaN with one seed)."""
    _check(values, VALUE_COLUMNS, "values")
    rows = []
    for (test, acc, model), grp in values.groupby(["test", "acc", "model"], sort=False):
        v = grp["psnr"].astype(float).to_numpy()
        d = paired_difference(v, np.zeros_like(v), confidence)  # the interval of the mean of v
        rows.append({"test": test, "acc": acc, "model": model, "seeds": len(v), "mean": d["mean"],
                     "ci_low": d["ci_low"], "ci_high": d["ci_high"]})
    return pd.DataFrame(rows, columns=["test", "acc", "model", "seeds", "mean", "ci_low", "ci_high"])


def _yerr(rows: pd.DataFrame) -> np.ndarray:
    """Asymmetric error bars from the interval columns (0 where there is no interval)."""
    low = (rows["mean"] - rows["ci_low"]).fillna(0).to_numpy()
    high = (rows["ci_high"] - rows["mean"]).fillna(0).to_numpy()
    return np.vstack([low, high])


def psnr_vs_acceleration(values: pd.DataFrame, models: tuple[tuple[str, str], ...] = MAIN) -> Figure:
    """PSNR against the acceleration of ``models``, mean over seeds with the 95 % interval of
    that mean as error bars; one panel per test set. Axes: one per test set."""
    stats = model_intervals(values)
    tests = _tests(values)
    if not tests:
        raise ValueError("values: no rows (no model has been evaluated on a test set)")
    fig = Figure(figsize=(5.2 * len(tests), 3.8), layout="constrained")
    axes = fig.subplots(1, len(tests), squeeze=False)[0]
    colours = palette([label for _, label in models])
    for ax, test in zip(axes, tests):
        rows = stats[stats["test"] == test]
        accs = sorted(set(rows["acc"]), key=acc_key)
        for i, (model, label) in enumerate(models):
            m = rows[rows["model"] == model].sort_values("acc", key=lambda a: a.map(acc_key))
            if m.empty:
                continue
            seeds = "/".join(str(n) for n in m["seeds"])
            dodge = (i - (len(models) - 1) / 2) * 0.06  # the bars of one acceleration side by side
            ax.errorbar(m["acc"].map(acc_key) + dodge, m["mean"], yerr=_yerr(m), marker="o", capsize=3,
                        color=colours[label], label=f"{label} ({seeds} seeds)")
        ax.set_xticks([acc_key(a) for a in accs], accs)
        if accs:
            ax.set_xlim(acc_key(accs[0]) - 0.6, acc_key(accs[-1]) + 0.6)
        ax.set(xlabel="acceleration", ylabel="PSNR (dB): mean over seeds, 95 % interval")
        ax.set_title(f"test set: {test}", fontsize=9)
        ax.legend(fontsize=7, loc="best")
    return fig


def _model_order(models) -> list[str]:
    present = list(dict.fromkeys(models))
    return [m for m, _ in MAIN if m in present] + sorted(m for m in present if m not in LABELS)


def psnr_per_model(values: pd.DataFrame, acc: str = "4x") -> Figure:
    """Every model evaluated at ``acc`` (all families): one point per seed (its mean PSNR over
    the test slices), the mean over seeds and its 95 % interval beside them; one panel (row)
    per test set. Axes: one per test set."""
    _check(values, VALUE_COLUMNS, "values")
    values = values[values["acc"] == acc]
    if values.empty:
        raise ValueError(f"values: no model evaluated at acc={acc!r}")
    stats = model_intervals(values)
    tests = _tests(values)
    order = _model_order(values["model"])
    fig = Figure(figsize=(max(6.0, 0.55 * len(order) + 1.5), 3.4 * len(tests)), layout="constrained")
    axes = fig.subplots(len(tests), 1, squeeze=False)[:, 0]
    seeds = sorted(set(values["seed"]))
    offset = {s: (i - (len(seeds) - 1) / 2) * 0.25 / max(1, len(seeds) - 1) for i, s in enumerate(seeds)}
    for ax, test in zip(axes, tests):
        rows = values[values["test"] == test]
        for i, model in enumerate(order):
            pts = rows[rows["model"] == model]
            if pts.empty:
                continue
            ax.scatter(i - 0.1 + pts["seed"].map(offset), pts["psnr"], s=14, color="tab:blue", alpha=0.8,
                       label="one seed" if i == 0 else None)
            st = stats[(stats["test"] == test) & (stats["model"] == model)]
            ax.errorbar([i + 0.2], st["mean"], yerr=_yerr(st), fmt="D", color="k", ms=4, capsize=3,
                        label="mean, 95 % interval" if i == 0 else None)
        ax.set_xticks(range(len(order)), [LABELS.get(m, m) for m in order], rotation=60, ha="right",
                      fontsize=7)
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{acc}, test set: {test}; {len(seeds)} seed(s)", fontsize=9)
        ax.legend(fontsize=7, loc="best")
    return fig


def _kind_order(kinds) -> list[str]:
    from kdmri.training.study import PILOT_ORDER

    present = list(dict.fromkeys(kinds))
    return [k for k in PILOT_ORDER if k in present] + [k for k in present if k not in PILOT_ORDER]


def learning_curves(curves: pd.DataFrame, title: str = "held-out score per epoch") -> Figure:
    """The held-out score per epoch of every run of ``curves``, one panel per stage kind, one
    colour per (model, acceleration), each seed a line; the learning-rate drop (after epoch
    ``lr_step``) dotted, the selected epoch circled. Axes: one per stage kind."""
    _check(curves, CURVE_COLUMNS, "curves")
    if curves.empty:
        raise ValueError("curves: no rows (no run has a training log)")
    kinds = _kind_order(curves["kind"])
    ncols = min(4, len(kinds))
    nrows = math.ceil(len(kinds) / ncols)
    fig = Figure(figsize=(3.6 * ncols, 2.9 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(kinds):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    for ax, kind in zip(axes, kinds):
        rows = curves[curves["kind"] == kind]
        groups = list(dict.fromkeys(zip(rows["model"], rows["acc"])))
        colours = dict(zip(groups, palette([f"{m} {a}" for m, a in groups], ()).values()))
        drops, labelled = set(), set()
        for (model, acc, _), run in rows.groupby(["model", "acc", "seed"], sort=False):
            run = run.sort_values("epoch")
            colour = colours[(model, acc)]
            ax.plot(run["epoch"], run["score"], color=colour, lw=1, alpha=0.8,
                    label=None if (model, acc) in labelled else f"{model} {acc}")
            labelled.add((model, acc))
            sel = run[run["epoch"] == run["selected"].iloc[0]]
            ax.plot(sel["epoch"], sel["score"], "o", mfc="none", color=colour, ms=6)
            step = run["lr_step"].iloc[0]
            if pd.notna(step) and (model, acc, step) not in drops:
                drops.add((model, acc, step))
                ax.axvline(float(step), color=colour, ls=":", lw=1)
        ax.set_title(f"{kind}", fontsize=9)
        ax.set(xlabel="epoch", ylabel=f"{rows['score_name'].iloc[0]} (held-out)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.plot([], [], "o", mfc="none", color="grey", label="selected epoch")
        if drops:
            ax.plot([], [], ":", color="grey", label="lr drop (after)")
        ax.legend(fontsize=6, loc="lower right")
    return fig


def _save(fig: Figure, path: Path) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    return path.name


def save_study_figures(values: pd.DataFrame, curves: pd.DataFrame, pilot: pd.DataFrame,
                       folder: Path) -> list[str]:
    """Write every figure the frames allow into ``folder``; returns their file names:
    ``psnr_vs_acc.png``, ``psnr_per_model_<acc>.png`` per acceleration,
    ``learning_curves.png`` and ``pilot_learning_curves.png``."""
    folder = Path(folder)
    names = []
    if len(values):
        names.append(_save(psnr_vs_acceleration(values), folder / "psnr_vs_acc.png"))
        for acc in sorted(set(values["acc"]), key=acc_key):
            names.append(_save(psnr_per_model(values, acc), folder / f"psnr_per_model_{acc}.png"))
    if len(curves):
        names.append(_save(learning_curves(curves, "study runs: held-out score per epoch"),
                           folder / "learning_curves.png"))
    if len(pilot):
        names.append(_save(learning_curves(pilot, "pilot (constant rate): held-out score, chosen epoch"),
                           folder / "pilot_learning_curves.png"))
    return names
