"""Tables and comparisons from experiment outputs (report.json, metrics.csv).

* :func:`collect_reports` reads every ``report.json`` under an experiments folder into a
  pandas DataFrame, one row per evaluated model;
* :func:`results_table` formats rows (ZF, teacher, student, KD...) as a paper-style table
  of ``mean +/- std`` per metric, with parameter counts;
* :func:`paired_comparison` pairs the per-slice ``metrics.csv`` of two experiments and
  returns the mean difference with a confidence interval (e.g. KD - student).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .errors import DataError
from .metrics import paired_difference

ROLE_ORDER = ["zf", "lr", "teacher", "sft-teacher", "student", "feature", "kd"]


def collect_reports(root: Path | str) -> pd.DataFrame:
    """One row per ``report.json`` below ``root``: dataset, acc, method, role, label, n_slices,
    parameters, ``<metric>_mean`` / ``<metric>_std`` (per slice), ``experiment`` folder."""
    root = Path(root)
    rows = []
    for path in sorted(root.rglob("report.json")):
        try:
            rep = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: unreadable report ({exc})") from exc
        row = {k: rep.get(k) for k in ("dataset", "acc", "task", "method", "role", "label",
                                        "n_slices", "parameters")}
        for metric, stats in rep.get("metrics", {}).items():
            row[f"{metric}_mean"], row[f"{metric}_std"] = stats["mean"], stats["std"]
        row["experiment"] = str(path.parent)
        rows.append(row)
    columns = ["dataset", "acc", "task", "method", "role", "label", "n_slices", "parameters",
               "experiment"]
    return pd.DataFrame(rows, columns=None if rows else columns)


def _fmt(mean: float, std: float, digits: int) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def results_table(reports: pd.DataFrame, rows: list[tuple[str, str]] | None = None,
                  metrics: tuple[str, ...] = ("psnr", "ssim"), dataset: str | None = None,
                  acc: str | None = None) -> pd.DataFrame:
    """Paper-style table: one row per (method, role) in ``rows`` (default: every report in
    ``ROLE_ORDER``), columns ``PSNR``, ``SSIM``... as ``mean ± std`` and ``parameters``.

    ``rows`` entries are ``(method, role)``, e.g. ``[("kdmri", "zf"), ("kdmri", "teacher")]``.
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
    out = []
    for method, role in rows:
        hit = df[(df["method"] == method) & (df["role"] == role)]
        if hit.empty:
            raise DataError(f"no report for method {method!r}, role {role!r} "
                            f"(evaluate it first: python -m kdmri evaluate --stage ...)")
        r = hit.iloc[0]
        entry = {"model": f"{method}/{r['label']}" if len({m for m, _ in rows}) > 1 else r["label"]}
        for m in metrics:
            entry[m.upper()] = _fmt(r[f"{m}_mean"], r[f"{m}_std"], 2 if m == "psnr" else 4)
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


def paired_comparison(experiment_a: Path | str, experiment_b: Path | str, metric: str = "psnr",
                      confidence: float = 0.95) -> dict:
    """Per-slice paired difference ``a - b`` of ``metric`` with a t confidence interval."""
    a, b = read_slice_metrics(experiment_a), read_slice_metrics(experiment_b)
    merged = a.merge(b, on=["volume", "slice"], suffixes=("_a", "_b"))
    if len(merged) != len(a) or len(merged) != len(b):
        raise DataError(f"{experiment_a} and {experiment_b}: evaluated on different slices "
                        f"({len(a)} vs {len(b)}, {len(merged)} in common)")
    return paired_difference(merged[f"{metric}_a"], merged[f"{metric}_b"], confidence)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-markdown rendering of a table (no extra dependency)."""
    cols = [table.index.name or ""] + list(table.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join(map(str, [idx, *row.tolist()])) + " |")
    return "\n".join(lines)
