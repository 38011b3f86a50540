"""The statistical figures of the results notebook, drawn with seaborn on a ``Figure`` (never
``pyplot``, like :mod:`kdmri.reporting.plots`).

====================================  ================================================
function                              figure
====================================  ================================================
:func:`slice_distributions`           per-slice PSNR / SSIM of each model: a violin (or
                                      box) with every slice as a dot, one panel per metric
:func:`metric_vs_acceleration`        a metric (mean ± std) against the acceleration,
                                      one line per model; missing accelerations named
:func:`metric_vs_cost`                a metric against parameters and against inference
                                      latency, one point per model (the axis spans the
                                      networks; ZF is a note), latency source named
====================================  ================================================

Inputs are what :mod:`kdmri.reporting.reports` reads (``metrics.csv`` through
:func:`~kdmri.reporting.reports.read_slice_metrics`, reports through
:func:`~kdmri.reporting.reports.collect_reports`) and the latency dicts of
:mod:`kdmri.reporting.latency`. Models are the rows of the papers' table
(:data:`kdmri.reporting.tables.RECON_ROWS`), so the figures name them as the tables do.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from kdmri.errors import DataError
from kdmri.reporting.reports import read_slice_metrics
from kdmri.reporting.tables import RECON_ROWS, Row, acc_key, pick_row

#: Axis label per metric.
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "nmse": "NMSE", "hfn": "HFN"}

#: The accelerations of the papers (KD-MRI: 4x, 5x, 8x).
PAPER_ACCS = ("4x", "5x", "8x")


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.upper())


def _figure(ncols: int, width: float = 4.2, height: float = 3.4) -> tuple[Figure, list]:
    fig = Figure(figsize=(ncols * width, height), layout="constrained")
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def palette(labels: Sequence[str], rows: Sequence[Row] = RECON_ROWS) -> dict:
    """One colour per model, fixed by the order of ``rows`` (then ``labels``), so a model has
    the same colour in every figure."""
    names = list(dict.fromkeys([r.label for r in rows] + list(labels)))
    colours = sns.color_palette("tab10", n_colors=len(names))
    return {n: colours[names.index(n)] for n in labels}


def _note(ax, text: str) -> None:
    ax.text(0.02, 0.02, text, transform=ax.transAxes, fontsize=7, color="0.35", va="bottom")


def slice_distributions(experiments: Mapping[str, Path | str | pd.DataFrame],
                        metrics: Sequence[str] = ("psnr", "ssim"), kind: str = "violin") -> Figure:
    """Per-slice distribution of each metric, one panel per metric: per model (``experiments``
    maps its label to an experiment folder holding ``metrics.csv``, or to that frame) a violin
    (``kind="violin"``) or a box (``kind="box"``) with every slice drawn as a dot.

    Axes: ``len(metrics)``; x = model (in the order given), y = the metric.
    """
    if not experiments:
        raise ValueError("experiments: expected at least one model -> experiment folder")
    if kind not in ("violin", "box"):
        raise ValueError(f"kind={kind!r}: expected 'violin' or 'box'")
    frames = []
    for label, exp in experiments.items():
        df = exp if isinstance(exp, pd.DataFrame) else read_slice_metrics(exp)
        where = "frame" if isinstance(exp, pd.DataFrame) else Path(exp) / "metrics.csv"
        absent = [m for m in metrics if m not in df]
        if absent:
            raise DataError(f"{where} ({label}): no column {absent}, expected per-slice {list(metrics)}")
        frames.append(df[list(metrics)].assign(model=label))
    data, order = pd.concat(frames, ignore_index=True), list(experiments)
    fig, axes = _figure(len(metrics), width=max(4.2, 1.1 * len(order) + 1.5))
    colours = palette(order)
    for ax, m in zip(axes, metrics):
        if kind == "violin":
            sns.violinplot(data=data, x="model", y=m, hue="model", order=order, palette=colours,
                           inner=None, cut=0, density_norm="width", legend=False, ax=ax, alpha=0.5)
        else:
            with warnings.catch_warnings():  # seaborn 0.13.2 still passes matplotlib's `vert`
                warnings.filterwarnings("ignore", message="vert: bool was deprecated")
                sns.boxplot(data=data, x="model", y=m, hue="model", order=order, palette=colours,
                            showfliers=False, legend=False, ax=ax, boxprops={"alpha": 0.5})
        sns.stripplot(data=data, x="model", y=m, order=order, color="0.15", size=2.5, jitter=0.15, ax=ax)
        ax.set_xlabel("model")
        ax.set_ylabel(_label(m))
        ax.set_title(f"per-slice {m.upper()} ({len(data)} slices, {len(order)} models)", fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return fig


def _level_column(metric: str, level: str) -> str:
    if level not in ("slice", "volume"):
        raise ValueError(f"level={level!r}: expected 'slice' or 'volume'")
    return f"{'volume_' if level == 'volume' else ''}{metric}"


def _rows_frame(reports: pd.DataFrame, rows: Sequence[Row], dataset: str | None, task: str,
                metric: str, level: str) -> pd.DataFrame:
    """One line per (row, acc) with a report: model, acc, mean, std, parameters."""
    col = _level_column(metric, level)
    df = reports
    if not df.empty:
        df = df[df["task"].fillna("recon") == task] if "task" in df else df
        if dataset is not None:
            df = df[df["dataset"] == dataset]
        elif df["dataset"].nunique() > 1:
            raise ValueError(f"dataset: the reports hold several datasets "
                             f"{sorted(df['dataset'].unique())}; name one")
    if not df.empty and f"{col}_mean" not in df:
        raise DataError(f"reports: no {col}_mean column (metric {metric!r} at level {level!r} "
                        "was not evaluated)")
    out = []
    for acc in sorted(df["acc"].dropna().unique(), key=acc_key) if not df.empty else []:
        for row in rows:
            r = pick_row(df[df["acc"] == acc], row)
            if r is not None and pd.notna(r.get(f"{col}_mean")):
                out.append({"model": row.label, "acc": acc, "mean": float(r[f"{col}_mean"]),
                            "std": float(r[f"{col}_std"]), "parameters": int(r["parameters"] or 0)})
    return pd.DataFrame(out, columns=["model", "acc", "mean", "std", "parameters"])


def metric_vs_acceleration(reports: pd.DataFrame, metric: str = "psnr", dataset: str | None = None,
                           rows: Sequence[Row] = RECON_ROWS, accs: Sequence[str] = PAPER_ACCS,
                           task: str = "recon", level: str = "slice") -> Figure:
    """``metric`` (mean ± std over slices, or volumes with ``level="volume"``) against the
    acceleration, one line per model of ``rows`` (:func:`~kdmri.reporting.reports.collect_reports`
    frame). The x axis holds ``accs`` and any other acceleration with a report; those of
    ``accs`` without any report are named in the figure, not an error.

    Axes: 1; one line per model with a report.
    """
    data = _rows_frame(reports, rows, dataset, task, metric, level)
    ticks = sorted(set(accs) | set(data["acc"]), key=acc_key)
    missing = [a for a in accs if a not in set(data["acc"])]
    fig, (ax,) = _figure(1, width=5.6, height=3.8)
    if not data.empty:
        data = data.assign(factor=data["acc"].map(acc_key))
        order = [r.label for r in rows if r.label in set(data["model"])]
        colours = palette(order, rows)
        sns.lineplot(data=data, x="factor", y="mean", hue="model", hue_order=order, palette=colours,
                     style="model", style_order=order, markers=True, dashes=False, ax=ax)
        for model, grp in data.groupby("model"):
            ax.errorbar(grp["factor"], grp["mean"], yerr=grp["std"], fmt="none", capsize=3,
                        color=colours[model], alpha=0.6)
        ax.legend(fontsize=7, loc="best")
    ax.set_xticks([acc_key(a) for a in ticks], ticks)
    ax.set_xlabel("acceleration")
    ax.set_ylabel(f"{_label(metric)}, mean ± std per {level}")
    ax.set_title(f"{metric.upper()} vs acceleration" + (f" ({dataset})" if dataset else ""), fontsize=9)
    if missing:
        _note(ax, f"no reports at {', '.join(missing)}")
    return fig


def _latency_of(network: str | None, latency: dict | None) -> float | None:
    """The latency (ms) of ``network`` (a :class:`~kdmri.reporting.tables.Row`'s ``network``,
    ``"teacher"`` / ``"student"``) in a :mod:`kdmri.reporting.latency` dict, matched by that
    name; ``None`` without a network or a measurement of it."""
    if network is None or not latency:
        return None
    value = latency.get(f"{network}_ms")
    return float(value) if value is not None else None


def metric_vs_cost(reports: pd.DataFrame, latency: Sequence[dict] = (), metric: str = "psnr",
                   dataset: str | None = None, acc: str | None = None, size: str | None = None,
                   rows: Sequence[Row] = RECON_ROWS, level: str = "slice") -> Figure:
    """``metric`` against the parameter count (left) and against the inference latency
    (right) of each model of ``rows`` at ``acc`` (default: the only acceleration of the
    reports), one point per model. The y axis spans the networks only, so models a tenth of
    a dB apart are told apart; a model without a network (ZF, far below) is a note under
    the axis, with its value. Latency is the entry of ``latency``
    (:mod:`kdmri.reporting.latency` dicts) for image ``size`` (default: the first), matched
    to a model by the name of the network it runs (:attr:`Row.network
    <kdmri.reporting.tables.Row>`); the panel names where it was measured (the dict's
    ``source``).

    Axes: 2; one point per model with a report (right: per model with a latency).
    """
    data = _rows_frame(reports, rows, dataset, "recon", metric, level)
    if acc is None and data["acc"].nunique() > 1:
        raise ValueError(f"acc: the reports hold several accelerations {sorted(data['acc'].unique())}; "
                         "name one")
    data = data[data["acc"] == acc] if acc is not None else data
    lat = next((x for x in latency if size is None or x["size"] == size), None)
    if size is not None and lat is None:
        raise ValueError(f"size={size!r}: no latency entry for it (have {[x['size'] for x in latency]})")
    network = {r.label: r.network for r in rows}
    baseline = data["model"].map(network).isna()
    zf, nets = data[baseline], data[~baseline]
    nets = nets.assign(latency_ms=[_latency_of(network[m], lat) for m in nets["model"]])
    order = list(dict.fromkeys(nets["model"]))
    fig, axes = _figure(2, width=4.6, height=3.8)
    lat_label = f"latency (ms, batch 1, {lat['size']})" if lat else "latency (ms)"
    below = "; ".join(f"{r['model']} (no network): {r['mean']:.2f}, below the axis" for _, r in zf.iterrows())
    for ax, x, xlabel in ((axes[0], "parameters", "parameters"), (axes[1], "latency_ms", lat_label)):
        pts = nets.dropna(subset=[x])
        if not pts.empty:
            sns.scatterplot(data=pts, x=x, y="mean", hue="model", hue_order=order,
                            palette=palette(order, rows), style="model",
                            style_order=order, s=60, ax=ax, legend=ax is axes[0])
            low, high = pts["mean"].min(), pts["mean"].max()
            span = max(high - low, 0.05)
            ax.set_ylim(low - 0.5 * span, high + 0.2 * span)  # room for the notes under the points
            ax.margins(x=0.25)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{_label(metric)}, mean per {level}")
        notes = [below] if below else []
        if x == "latency_ms":
            notes.append(f"latency {lat['source']}" if lat and lat.get("source") else
                         "latency: source not given" if lat else "no latency given")
            if lat and pts.empty:
                notes.append("no latency measured for these models")
        if notes:
            _note(ax, "\n".join(notes))
    axes[0].xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k"))
    axes[0].set_title(f"{metric.upper()} vs parameters" + (f" ({acc})" if acc else ""), fontsize=9)
    axes[1].set_title(f"{metric.upper()} vs inference latency", fontsize=9)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7, loc="best")
    return fig
