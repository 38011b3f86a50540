"""Paired comparisons of two experiments over the same validation slices.

Two models evaluated on the same slices give per-slice metrics that are paired (slice
difficulty cancels); the difference ``a - b`` per slice, with a t confidence interval
(:func:`kdmri.metrics.paired_difference`), says whether e.g. the KD student beats the
student alone.

* :func:`paired_slices`: the two ``metrics.csv`` merged on (volume, slice);
* :func:`paired_comparison`: the paired difference of one metric;
* :func:`compare_experiments`, :func:`comparison_table`, :func:`report_comparisons`,
  :func:`format_comparison`: both sides' mean +/- std and the paired difference with its
  confidence interval, for the SFT-KD grid, the ablations and the results notebook.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from kdmri.errors import DataError
from kdmri.metrics import paired_difference
from kdmri.reporting.reports import DIGITS, MISSING, mean_std, read_slice_metrics
from kdmri.reporting.tables import RECON_ROWS, Row, acc_key, pick_row

#: Rows the comparisons may use: :data:`~kdmri.reporting.tables.RECON_ROWS` plus the student
#: distilled with the same recipe as the SFT-KD student from the standard teacher (notebook
#: 05; else KD-MRI's).
COMPARISON_ROWS: tuple[Row, ...] = RECON_ROWS + (
    Row("standard-teacher KD student", (("std-at_kdmri", "kd"), ("kdmri", "kd")),
        "notebook 05 (std-at_kdmri) or notebook 04"),
)

#: Paired comparisons of the results notebook: (label, row a, row b) by row label, a - b.
COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("KD - student", "KD student", "Student"),
    ("SFT teacher - teacher", "SFT teacher", "Teacher"),
    ("SFT-KD - KD", "SFT-KD student", "standard-teacher KD student"),
)


def paired_slices(experiment_a: Path | str, experiment_b: Path | str) -> pd.DataFrame:
    """The two per-slice tables merged on (volume, slice), columns ``<metric>_a/_b``;
    :class:`~kdmri.errors.DataError` when they were evaluated on different slices."""
    a, b = read_slice_metrics(experiment_a), read_slice_metrics(experiment_b)
    merged = a.merge(b, on=["volume", "slice"], suffixes=("_a", "_b"))
    if len(merged) != len(a) or len(merged) != len(b):
        raise DataError(f"{experiment_a} and {experiment_b}: evaluated on different slices "
                        f"({len(a)} vs {len(b)}, {len(merged)} in common)")
    return merged


#: What the slice-level interval assumes; shown with every comparison.
SLICE_ASSUMPTION = ("the slice-level interval treats slices as independent; slices of one volume "
                    "are correlated, so it overstates confidence; the per-volume interval (mean "
                    "difference per volume, t over volumes) does not")


def volume_difference(merged: pd.DataFrame, metric: str = "psnr", confidence: float = 0.95) -> dict:
    """Paired difference over volumes: each volume's mean ``a - b`` of ``metric`` over its
    slices, with a t interval over volumes; keys ``volume_mean``, ``volume_ci_low``,
    ``volume_ci_high``, ``volumes`` (NaN interval below two volumes)."""
    per_volume = merged.groupby("volume")[[f"{metric}_a", f"{metric}_b"]].mean()
    d = paired_difference(per_volume[f"{metric}_a"], per_volume[f"{metric}_b"], confidence)
    return {"volume_mean": d["mean"], "volume_ci_low": d["ci_low"], "volume_ci_high": d["ci_high"],
            "volumes": d["n"]}


def paired_comparison(experiment_a: Path | str, experiment_b: Path | str, metric: str = "psnr",
                      confidence: float = 0.95) -> dict:
    """Per-slice paired difference ``a - b`` of ``metric`` with a t confidence interval, plus
    the per-volume difference (:func:`volume_difference`) and what the slice-level interval
    assumes (``assumes``: :data:`SLICE_ASSUMPTION`)."""
    merged = paired_slices(experiment_a, experiment_b)
    out = paired_difference(merged[f"{metric}_a"], merged[f"{metric}_b"], confidence)
    return {**out, **volume_difference(merged, metric, confidence), "assumes": SLICE_ASSUMPTION}


def compare_experiments(experiment_a: Path | str, experiment_b: Path | str,
                        metrics: tuple[str, ...] = ("psnr", "ssim"), confidence: float = 0.95) -> dict:
    """Both experiments' per-slice ``mean`` / ``std`` (population std, as in the reports) and the
    paired difference ``a - b`` with its ``confidence`` interval, from their ``metrics.csv``.

    Keys: ``n`` (paired slices), ``a_<metric>_mean``, ``a_<metric>_std``, ``b_<metric>_...``,
    ``d_<metric>_mean``, ``d_<metric>_ci_low``, ``d_<metric>_ci_high`` (slices as independent,
    :data:`SLICE_ASSUMPTION`), and over volumes ``volumes``, ``v_<metric>_mean``,
    ``v_<metric>_ci_low``, ``v_<metric>_ci_high`` (NaN interval below two volumes).
    """
    merged = paired_slices(experiment_a, experiment_b)
    out: dict = {"n": len(merged)}
    for m in metrics:
        for side in ("a", "b"):
            values = merged[f"{m}_{side}"].to_numpy(dtype=float)
            out[f"{side}_{m}_mean"], out[f"{side}_{m}_std"] = float(values.mean()), float(values.std())
        d = paired_difference(merged[f"{m}_a"], merged[f"{m}_b"], confidence)
        out[f"d_{m}_mean"], out[f"d_{m}_ci_low"], out[f"d_{m}_ci_high"] = d["mean"], d["ci_low"], d["ci_high"]
        v = volume_difference(merged, m, confidence)
        out["volumes"] = v["volumes"]
        out[f"v_{m}_mean"], out[f"v_{m}_ci_low"], out[f"v_{m}_ci_high"] = (
            v["volume_mean"], v["volume_ci_low"], v["volume_ci_high"])
    return out


def comparison_table(pairs: Mapping[str, tuple[Path | str, Path | str]],
                     metrics: tuple[str, ...] = ("psnr", "ssim"), confidence: float = 0.95) -> pd.DataFrame:
    """:func:`compare_experiments` for ``{label: (experiment a, experiment b)}``, one row each
    (index ``comparison``); numeric columns, see :func:`format_comparison` for display."""
    rows = {label: compare_experiments(a, b, metrics, confidence) for label, (a, b) in pairs.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "comparison"
    return table


def report_comparisons(reports: pd.DataFrame, comparisons: tuple[tuple[str, str, str], ...] = COMPARISONS,
                       rows: tuple[Row, ...] = COMPARISON_ROWS, metrics: tuple[str, ...] = ("psnr", "ssim"),
                       confidence: float = 0.95, task: str = "recon") -> tuple[pd.DataFrame, list[str]]:
    """The paired ``comparisons`` (``(label, row a, row b)``, e.g. KD - student) for every
    dataset and acceleration of ``reports``: ``(table, missing)`` with the table of
    :func:`comparison_table` (index ``"<dataset> <acc>: <label>"``) and one line per
    comparison that could not be made because a side is missing (one line in all when there
    is no report of ``task``)."""
    by_label = {r.label: r for r in rows}
    unknown = sorted({x for _, a, b in comparisons for x in (a, b)} - set(by_label))
    if unknown:
        raise ValueError(f"comparisons: rows {unknown} are not among {sorted(by_label)}")
    pairs, missing = {}, []
    df = reports if reports.empty else reports[reports["task"].fillna("recon") == task]
    if df.empty:
        return pd.DataFrame(), [f"no {task} evaluation reports yet"]
    keys = sorted({(d, a) for d, a in zip(df["dataset"], df["acc"])}, key=lambda k: (k[0], acc_key(k[1])))
    for dataset, acc in keys:
        sub = df[(df["dataset"] == dataset) & (df["acc"] == acc)]
        for label, a, b in comparisons:
            ra, rb = pick_row(sub, by_label[a]), pick_row(sub, by_label[b])
            if ra is None or rb is None:
                lacking = " and ".join(x for x, r in ((a, ra), (b, rb)) if r is None)
                missing.append(f"{dataset} {acc}: {label} needs {lacking}")
                continue
            pairs[f"{dataset} {acc}: {label}"] = (ra["experiment"], rb["experiment"])
    table = comparison_table(pairs, metrics, confidence) if pairs else pd.DataFrame()
    return table, missing


def _signed(x: float, digits: int) -> str:
    return MISSING if x is None or pd.isna(x) else f"{x:+.{digits}f}"


def format_comparison(table: pd.DataFrame, metrics: tuple[str, ...] = ("psnr", "ssim"),
                      a_label: str | None = "a", b_label: str | None = "b",
                      confidence: float = 0.95) -> pd.DataFrame:
    """Display form of :func:`comparison_table`: ``"<a_label> PSNR"`` and ``"<b_label> PSNR"``
    as ``mean ± std`` (left out where the label is ``None``), ``"Δ PSNR [95 % CI]"`` as
    ``+0.54 [+0.31, +0.77]`` (slices as independent), ``"Δ PSNR per volume [95 % CI]"``
    where there are at least two volumes, ``slices``, ``volumes``; a ``description`` column is
    kept in front; ``attrs["note"]`` says what the slice-level interval assumes."""
    out = pd.DataFrame(index=table.index)
    if "description" in table:
        out["description"] = table["description"]
    ci = f"{100 * confidence:.0f} % CI"
    for m in metrics:
        digits = DIGITS.get(m, 4)
        for side, label in (("a", a_label), ("b", b_label)):
            if label is not None:
                out[f"{label} {m.upper()}"] = [mean_std(mu, sd, digits) for mu, sd in
                                               zip(table[f"{side}_{m}_mean"], table[f"{side}_{m}_std"])]
        out[f"Δ {m.upper()} [{ci}]"] = [
            f"{_signed(mu, digits)} [{_signed(lo, digits)}, {_signed(hi, digits)}]"
            for mu, lo, hi in zip(table[f"d_{m}_mean"], table[f"d_{m}_ci_low"], table[f"d_{m}_ci_high"])]
        if f"v_{m}_ci_low" in table and table[f"v_{m}_ci_low"].notna().any():
            out[f"Δ {m.upper()} per volume [{ci}]"] = [
                f"{_signed(mu, digits)} [{_signed(lo, digits)}, {_signed(hi, digits)}]"
                for mu, lo, hi in zip(table[f"v_{m}_mean"], table[f"v_{m}_ci_low"], table[f"v_{m}_ci_high"])]
    if "n" in table:
        out["slices"] = table["n"].astype(int)
    if "volumes" in table:
        out["volumes"] = table["volumes"].astype(int)
    out.attrs["note"] = f"Slice-level Δ: {SLICE_ASSUMPTION}."
    return out
