"""Evaluation reports of experiment folders, read into frames and shown as tables.

:func:`kdmri.evaluation.evaluate` writes, per experiment folder
(``experiments/<dataset>/acc_<acc>/<method>_<role>``), a ``report.json`` (mean and std of
each metric per slice and per volume, parameter count) and a ``metrics.csv`` (one row per
slice). This module reads them:

* :func:`collect_reports`: every ``report.json`` under a folder, one row per model;
* :func:`read_slice_metrics`: one experiment's ``metrics.csv``;
* :func:`results_table`: chosen ``(method, role)`` rows as ``mean ± std`` per metric, with
  parameter counts; :func:`models_markdown`, :func:`describe_reports`, :func:`to_markdown`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from kdmri.errors import DataError

#: Row order of :func:`results_table` by default (SFT reports are method ``sft``, role ``teacher``).
ROLE_ORDER = ["zf", "lr", "teacher", "student", "feature", "kd"]

#: Shown for an entry that has no value.
MISSING = "–"

#: Decimals shown per metric.
DIGITS = {"psnr": 2, "ssim": 4, "nmse": 4, "hfn": 4}


def mean_std(mean: float, std: float, digits: int) -> str:
    """``"33.50 ± 0.71"``."""
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def collect_reports(root: Path | str) -> pd.DataFrame:
    """One row per validation ``report.json`` below ``root``: dataset, acc, method, role, label,
    n_slices, parameters, ``<metric>_mean`` / ``<metric>_std`` (per slice),
    ``volume_<metric>_mean`` / ``volume_<metric>_std`` (per volume, KD-MRI style),
    ``experiment`` folder. Evaluations on other test sets (``<experiment>/test_<set>/``,
    :func:`kdmri.evaluation.evaluate.report_dir`) are other slices and are left out."""
    from kdmri.evaluation.evaluate import TEST_PREFIX

    root = Path(root)
    rows = []
    for path in sorted(root.rglob("report.json")):
        if path.parent.name.startswith(TEST_PREFIX):
            continue
        try:
            rep = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: unreadable report ({exc})") from exc
        row = {k: rep.get(k) for k in ("dataset", "acc", "task", "method", "role", "label",
                                        "n_slices", "parameters")}
        for metric, stats in rep.get("metrics", {}).items():
            row[f"{metric}_mean"], row[f"{metric}_std"] = stats["mean"], stats["std"]
        for metric, stats in rep.get("volume_metrics", {}).items():
            row[f"volume_{metric}_mean"], row[f"volume_{metric}_std"] = stats["mean"], stats["std"]
        row["experiment"] = str(path.parent)
        rows.append(row)
    columns = ["dataset", "acc", "task", "method", "role", "label", "n_slices", "parameters",
               "experiment"]
    return pd.DataFrame(rows, columns=None if rows else columns)


def results_table(reports: pd.DataFrame, rows: list[tuple[str, str]] | None = None,
                  metrics: tuple[str, ...] = ("psnr", "ssim"), dataset: str | None = None,
                  acc: str | None = None, labels: list[str] | None = None) -> pd.DataFrame:
    """Paper-style table: one row per (method, role) in ``rows`` (default: every report in
    ``ROLE_ORDER``), columns ``PSNR``, ``SSIM``... as ``mean ± std`` and ``parameters``.

    ``rows`` entries are ``(method, role)``, e.g. ``[("kdmri", "zf"), ("kdmri", "teacher")]``;
    ``labels`` (one per row) names the rows instead of the reports' labels.
    """
    df = reports
    if dataset is not None:
        df = df[df["dataset"] == dataset]
    if acc is not None:
        df = df[df["acc"] == acc]
    if rows is None:
        order = {r: i for i, r in enumerate(ROLE_ORDER)}
        df = df.assign(_o=df["role"].map(lambda r: order.get(r, len(order)))).sort_values(
            ["method", "_o"])
        rows = list(zip(df["method"], df["role"]))
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"labels: expected {len(rows)} labels (one per row), got {len(labels)}")
    out = []
    for i, (method, role) in enumerate(rows):
        hit = df[(df["method"] == method) & (df["role"] == role)]
        if hit.empty:
            raise DataError(f"no report for method {method!r}, role {role!r} "
                            f"(evaluate it first: python -m kdmri evaluate --stage ...)")
        r = hit.iloc[0]
        entry = {"model": f"{method}/{r['label']}" if len({m for m, _ in rows}) > 1 else r["label"]}
        if labels is not None:
            entry["model"] = labels[i]
        for m in metrics:
            entry[m.upper()] = mean_std(r[f"{m}_mean"], r[f"{m}_std"], DIGITS.get(m, 4))
        entry["parameters"] = int(r["parameters"]) if r["parameters"] else 0
        entry["slices"] = int(r["n_slices"])
        out.append(entry)
    return pd.DataFrame(out).set_index("model")


def read_slice_metrics(experiment: Path | str) -> pd.DataFrame:
    """The per-slice ``metrics.csv`` of an experiment folder."""
    path = Path(experiment) / "metrics.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found (evaluate this experiment first)")
    return pd.read_csv(path)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-markdown rendering of a table (no extra dependency)."""
    cols = [table.index.name or ""] + list(table.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join(map(str, [idx, *row.tolist()])) + " |")
    return "\n".join(lines)


def describe_reports(reports: pd.DataFrame, where: str = "the experiments folder") -> str:
    """One line per dataset and acceleration listing the evaluated experiment folders."""
    if reports.empty:
        return f"no report.json under {where}"
    lines = [f"{len(reports)} evaluation reports under {where}:"]
    for (dataset, acc), grp in reports.groupby(["dataset", "acc"], sort=True):
        names = sorted(f"{m}_{r}" for m, r in zip(grp["method"], grp["role"]))
        lines.append(f"  {dataset} {acc}: {', '.join(names)}")
    return "\n".join(lines)


def models_markdown(reports: pd.DataFrame, dataset: str, acc: str,
                    where: str = "the experiments folder") -> str:
    """Markdown of :func:`results_table` for every evaluated model of ``dataset`` at ``acc``
    (ablations and SFT grids included), or a note when there is none."""
    df = reports if reports.empty else reports[(reports["dataset"] == dataset) & (reports["acc"] == acc)]
    if df.empty:
        return f"No evaluation reports for {dataset} {acc} under {where} yet."
    return to_markdown(results_table(df))
