"""Tables and comparisons from experiment outputs (report.json, metrics.csv).

* :func:`collect_reports` reads every ``report.json`` under an experiments folder into a
  pandas DataFrame, one row per evaluated model;
* :func:`results_table` formats rows (ZF, teacher, student, KD...) as a paper-style table
  of ``mean +/- std`` per metric, with parameter counts;
* :func:`paired_comparison` pairs the per-slice ``metrics.csv`` of two experiments and
  returns the mean difference with a confidence interval (e.g. KD - student);
* :func:`paper_table` / :func:`paper_tables_markdown`: the papers' layout -- rows ZF,
  teacher, student, KD student (and the SFT rows), columns per acceleration -- with the
  entries that are missing named (:func:`missing_entries`), not fatal;
* :func:`compare_experiments`, :func:`comparison_table`, :func:`report_comparisons`,
  :func:`format_comparison`: both sides' mean +/- std and the paired difference with its
  confidence interval, for the SFT-KD grid, the ablations and the results notebook;
* :func:`efficiency_table`, :func:`measure_latency`, :func:`read_benchmark_latency`:
  parameter counts and inference latency of teacher and student;
* :func:`kdmri_paper_table`, :func:`sft_paper_table`: the published numbers, for reference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kdmri.errors import DataError
from kdmri.metrics import paired_difference

ROLE_ORDER = ["zf", "lr", "teacher", "sft-teacher", "student", "feature", "kd"]


def collect_reports(root: Path | str) -> pd.DataFrame:
    """One row per ``report.json`` below ``root``: dataset, acc, method, role, label, n_slices,
    parameters, ``<metric>_mean`` / ``<metric>_std`` (per slice), ``volume_<metric>_mean`` /
    ``volume_<metric>_std`` (per volume, KD-MRI style), ``experiment`` folder."""
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
        for metric, stats in rep.get("volume_metrics", {}).items():
            row[f"volume_{metric}_mean"], row[f"volume_{metric}_std"] = stats["mean"], stats["std"]
        row["experiment"] = str(path.parent)
        rows.append(row)
    columns = ["dataset", "acc", "task", "method", "role", "label", "n_slices", "parameters",
               "experiment"]
    return pd.DataFrame(rows, columns=None if rows else columns)


def _fmt(mean: float, std: float, digits: int) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


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
    merged = _paired_slices(experiment_a, experiment_b)
    return paired_difference(merged[f"{metric}_a"], merged[f"{metric}_b"], confidence)


def _paired_slices(experiment_a: Path | str, experiment_b: Path | str) -> pd.DataFrame:
    """The two per-slice tables merged on (volume, slice), columns ``<metric>_a/_b``."""
    a, b = read_slice_metrics(experiment_a), read_slice_metrics(experiment_b)
    merged = a.merge(b, on=["volume", "slice"], suffixes=("_a", "_b"))
    if len(merged) != len(a) or len(merged) != len(b):
        raise DataError(f"{experiment_a} and {experiment_b}: evaluated on different slices "
                        f"({len(a)} vs {len(b)}, {len(merged)} in common)")
    return merged


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-markdown rendering of a table (no extra dependency)."""
    cols = [table.index.name or ""] + list(table.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join(map(str, [idx, *row.tolist()])) + " |")
    return "\n".join(lines)


# =========================================================================== paper-style tables

#: Shown for an entry that has no report.
MISSING = "–"


@dataclass(frozen=True)
class Row:
    """A row of a paper-style table: the first ``(method, role)`` of ``candidates`` that has a
    report fills it; ``source`` says what produces it (named when the row is missing)."""

    label: str
    candidates: tuple[tuple[str, str], ...]
    source: str


#: Reconstruction rows: the KD-MRI table (ZF, teacher, student, KD student) plus SFT-KD-Recon's
#: pair of students distilled with attention transfer from the standard and from the SFT
#: teacher (notebook 05; they may train for ``kd_epochs``, so compare them with each other).
RECON_ROWS: tuple[Row, ...] = (
    Row("ZF", (("kdmri", "zf"),), "notebook 03 (evaluate stage zf)"),
    Row("Teacher", (("kdmri", "teacher"),), "notebook 03 (stage teacher)"),
    Row("Student", (("kdmri", "student"),), "notebook 03 (stage student)"),
    Row("KD student", (("kdmri", "kd"),), "notebook 04 (stages feature, kd)"),
    Row("SFT teacher", (("sft", "teacher"),), "notebook 05 (stage sft-teacher)"),
    Row("KD student (05, standard teacher)", (("std-at_kdmri", "kd"),),
        "notebook 05 (feature_losses with 'at_kdmri')"),
    Row("SFT-KD student", (("sft-at_kdmri", "kd"), ("sft", "kd")),
        "notebook 05 (feature_losses with 'at_kdmri')"),
)

#: Super-resolution rows (KD-MRI's VDSR extension).
SR_ROWS: tuple[Row, ...] = (
    Row("LR", (("sr", "lr"),), "notebook 06 (evaluate stage sr-lr)"),
    Row("Teacher", (("sr", "teacher"),), "notebook 06 (stage sr-teacher)"),
    Row("Student", (("sr", "student"),), "notebook 06 (stage sr-student)"),
    Row("KD student", (("sr", "kd"),), "notebook 06 (stages sr-feature, sr-kd)"),
)

#: Rows the comparisons may use: :data:`RECON_ROWS` plus the student distilled with the same
#: recipe as the SFT-KD student from the standard teacher (notebook 05; else KD-MRI's).
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

_DIGITS = {"psnr": 2, "ssim": 4, "nmse": 4, "hfn": 4}


def acc_key(acc: str) -> float:
    """Sort key of an acceleration tag (``"4x"`` < ``"5x"`` < ``"10x"``)."""
    try:
        return float(str(acc).rstrip("x"))
    except ValueError:
        return float("inf")


def _select(reports: pd.DataFrame, dataset: str | None, task: str | None) -> pd.DataFrame:
    df = reports
    if df.empty:
        return df
    if task is not None and "task" in df:
        df = df[df["task"].fillna("recon") == task]
    if dataset is None:
        names = sorted(df["dataset"].dropna().unique())
        if len(names) > 1:
            raise ValueError(f"dataset: the reports hold several datasets {names}; name one "
                             "(or use paper_tables)")
        return df
    return df[df["dataset"] == dataset]


def _pick(df: pd.DataFrame, row: Row) -> pd.Series | None:
    for method, role in row.candidates:
        hit = df[(df["method"] == method) & (df["role"] == role)]
        if not hit.empty:
            return hit.iloc[0]
    return None


def _cell(r: pd.Series | None, metric: str, level: str) -> str:
    prefix = "volume_" if level == "volume" else ""
    mean, std = (r.get(f"{prefix}{metric}_mean"), r.get(f"{prefix}{metric}_std")) if r is not None else (
        None, None)
    if mean is None or pd.isna(mean):
        return MISSING
    digits = _DIGITS.get(metric, 4)
    return f"{mean:.{digits}f}" if std is None or pd.isna(std) else _fmt(mean, std, digits)


def paper_table(reports: pd.DataFrame, dataset: str | None = None, rows: tuple[Row, ...] = RECON_ROWS,
                metrics: tuple[str, ...] = ("psnr", "ssim"), task: str = "recon",
                level: str = "slice", drop_empty: bool = True) -> pd.DataFrame:
    """The papers' table for one dataset: one row per :class:`Row` (ZF, teacher, student, KD
    student, SFT teacher, SFT-KD student), columns ``"<acc> PSNR"``, ``"<acc> SSIM"`` for every
    acceleration with a report (sorted 4x, 5x, 8x), entries ``mean ± std``.

    ``level`` ``"slice"`` gives the mean and std over slices (SFT-KD-Recon style),
    ``"volume"`` over volumes (KD-MRI style). An entry without a report is :data:`MISSING`;
    a row with no entry at all is left out unless ``drop_empty=False``. ``dataset`` may be
    omitted when the reports hold one dataset.
    """
    if level not in ("slice", "volume"):
        raise ValueError(f"level={level!r}: expected 'slice' or 'volume'")
    df = _select(reports, dataset, task)
    accs = sorted(df["acc"].dropna().unique(), key=acc_key) if not df.empty else []
    columns = [f"{acc} {m.upper()}" for acc in accs for m in metrics]
    out = {}
    for row in rows:
        entry = {}
        for acc in accs:
            r = _pick(df[df["acc"] == acc], row)
            for m in metrics:
                entry[f"{acc} {m.upper()}"] = _cell(r, m, level)
        if not drop_empty or any(v != MISSING for v in entry.values()):
            out[row.label] = entry
    table = pd.DataFrame.from_dict(out, orient="index", columns=columns) if out else pd.DataFrame(
        columns=columns)
    table.index.name = "model"
    return table


def missing_entries(reports: pd.DataFrame, dataset: str, rows: tuple[Row, ...] = RECON_ROWS,
                    task: str = "recon", accs: list[str] | None = None) -> list[str]:
    """What :func:`paper_table` lacks for ``dataset``: one line per (acceleration, row) without
    a report, naming the experiment folder(s) looked for and what produces them."""
    df = _select(reports, dataset, task)
    if accs is None:
        accs = sorted(df["acc"].dropna().unique(), key=acc_key) if not df.empty else []
    lines = []
    for acc in accs:
        for row in rows:
            if _pick(df[df["acc"] == acc], row) is None:
                folders = " or ".join(f"{m}_{r}" for m, r in row.candidates)
                lines.append(f"{dataset} {acc}: {row.label} missing ({folders}; {row.source})")
    return lines


def paper_tables(reports: pd.DataFrame, rows: tuple[Row, ...] = RECON_ROWS, task: str = "recon",
                 **options) -> dict[str, pd.DataFrame]:
    """:func:`paper_table` of every dataset of ``task`` in ``reports``: ``{dataset: table}``."""
    if reports.empty:
        return {}
    df = reports[reports["task"].fillna("recon") == task]
    names = sorted(df["dataset"].dropna().unique())
    return {d: paper_table(df, d, rows, task=task, **options) for d in names}


def paper_tables_markdown(reports: pd.DataFrame, rows: tuple[Row, ...] = RECON_ROWS, task: str = "recon",
                          level: str = "slice", where: str = "the experiments folder") -> str:
    """Markdown of :func:`paper_tables`, each under a ``### <dataset>`` heading and followed by
    the list of missing entries; a note instead when there is no report of ``task``."""
    tables = paper_tables(reports, rows, task, level=level)
    if not tables:
        sources = sorted({r.source.split(" (")[0] for r in rows})
        return (f"No {task} evaluation reports under {where} yet: run {', '.join(sources)} "
                "(or a batch run) first.")
    what = "slices (SFT-KD-Recon style)" if level == "slice" else "volumes (KD-MRI style)"
    parts = []
    for dataset, table in tables.items():
        parts += [f"### {dataset}", "", f"PSNR (dB) / SSIM, mean ± std over validation {what}.", "",
                  to_markdown(table), ""]
        missing = missing_entries(reports, dataset, rows, task)
        if missing:
            parts += ["Not yet available:", "", *[f"* {m}" for m in missing], ""]
    return "\n".join(parts)


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


def _find(cfg, rows: tuple[Row, ...], needs: str) -> tuple[dict[str, tuple[str, str, Path]], list[str]]:
    found, missing = {}, []
    for row in rows:
        for method, role in row.candidates:
            folder = cfg.experiment(role, method)
            if (folder / needs).is_file():
                found[row.label] = (method, role, folder)
                break
        else:
            folders = " or ".join(f"{m}_{r}" for m, r in row.candidates)
            missing.append(f"{row.label}: no {needs} in {folders} ({row.source})")
    return found, missing


def available_experiments(cfg, rows: tuple[Row, ...] = RECON_ROWS, needs: str = "report.json",
                          ) -> tuple[dict[str, Path], list[str]]:
    """``({label: experiment folder}, missing)`` for the ``rows`` of ``cfg``'s dataset and
    acceleration (a :class:`~kdmri.config.Config`): the first candidate folder of each row
    holding the file ``needs`` (e.g. ``"train_log.csv"``), and one line per row without one."""
    found, missing = _find(cfg, rows, needs)
    return {label: folder for label, (_, _, folder) in found.items()}, missing


def available_reconstructions(cfg, batch: Mapping, rows: tuple[Row, ...] = RECON_ROWS,
                              target_after: str = "ZF") -> tuple[dict, list[str]]:
    """``({label: image (H, W)}, missing)``: the reconstructions of the validation slice in
    ``batch`` (:func:`kdmri.tutorial.validation_slice`) by every row's model that has been
    evaluated, with the fully sampled image as ``"target"`` after ``target_after`` (first if
    that row is absent), ready for :func:`kdmri.reporting.plots.reconstruction_figure`; rows without
    reconstructions are named in ``missing``."""
    from kdmri.tutorial import reconstructions

    found, missing = _find(cfg, rows, needs=f"results/{batch['volume'][0]}.h5")
    images = {} if target_after in found else reconstructions(cfg, {"target": "target"}, batch)
    for label, (method, role, _) in found.items():
        try:
            images.update(reconstructions(cfg.replace(method=method), {label: role}, batch))
        except DataError as exc:
            missing.append(f"{label}: {exc}")
        if label == target_after:
            images.update(reconstructions(cfg, {"target": "target"}, batch))
    return images, missing


# =========================================================================== paired comparisons


def compare_experiments(experiment_a: Path | str, experiment_b: Path | str,
                        metrics: tuple[str, ...] = ("psnr", "ssim"), confidence: float = 0.95) -> dict:
    """Both experiments' per-slice ``mean`` / ``std`` (population std, as in the reports) and the
    paired difference ``a - b`` with its ``confidence`` interval, from their ``metrics.csv``.

    Keys: ``n`` (paired slices), ``a_<metric>_mean``, ``a_<metric>_std``, ``b_<metric>_...``,
    ``d_<metric>_mean``, ``d_<metric>_ci_low``, ``d_<metric>_ci_high``.
    """
    merged = _paired_slices(experiment_a, experiment_b)
    out: dict = {"n": len(merged)}
    for m in metrics:
        for side in ("a", "b"):
            values = merged[f"{m}_{side}"].to_numpy(dtype=float)
            out[f"{side}_{m}_mean"], out[f"{side}_{m}_std"] = float(values.mean()), float(values.std())
        d = paired_difference(merged[f"{m}_a"], merged[f"{m}_b"], confidence)
        out[f"d_{m}_mean"], out[f"d_{m}_ci_low"], out[f"d_{m}_ci_high"] = d["mean"], d["ci_low"], d["ci_high"]
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
            ra, rb = _pick(sub, by_label[a]), _pick(sub, by_label[b])
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
    ``+0.54 [+0.31, +0.77]``, ``slices``; a ``description`` column is kept in front."""
    out = pd.DataFrame(index=table.index)
    if "description" in table:
        out["description"] = table["description"]
    ci = f"{100 * confidence:.0f} % CI"
    for m in metrics:
        digits = _DIGITS.get(m, 4)
        for side, label in (("a", a_label), ("b", b_label)):
            if label is not None:
                out[f"{label} {m.upper()}"] = [_fmt(mu, sd, digits) for mu, sd in
                                               zip(table[f"{side}_{m}_mean"], table[f"{side}_{m}_std"])]
        out[f"Δ {m.upper()} [{ci}]"] = [
            f"{_signed(mu, digits)} [{_signed(lo, digits)}, {_signed(hi, digits)}]"
            for mu, lo, hi in zip(table[f"d_{m}_mean"], table[f"d_{m}_ci_low"], table[f"d_{m}_ci_high"])]
    if "n" in table:
        out["slices"] = table["n"].astype(int)
    return out


# =========================================================================== parameters, latency


def measure_latency(shape: tuple[int, int] = (96, 96), device: str = "cpu") -> dict:
    """Inference latency (batch 1, median of 20 runs) of the DC-CNN teacher and student at
    ``shape`` with :func:`kdmri.tools.benchmark.run_benchmarks`: ``{"size", "teacher_ms",
    "student_ms", "speedup"}``."""
    from kdmri.tools.benchmark import run_benchmarks

    size = tuple(int(s) for s in shape)
    return run_benchmarks(sizes=(), latency_sizes=(size,), device=device)["latency"][0]


_LATENCY_ROW = re.compile(r"^\|\s*(\d+x\d+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)x\s*\|\s*$")
_BENCH_DEVICE = re.compile(r"^# kdmri benchmarks \((\w+)\)")


def read_benchmark_latency(path: Path | str | None = None, device: str = "cpu") -> list[dict]:
    """The latency rows of ``benchmarks/results.md`` (``path``; default: the project's) written
    by ``python -m kdmri benchmark``, as :func:`measure_latency` dicts; ``[]`` when the file
    does not exist or was measured on another device than ``device``."""
    from kdmri.paths import project_root

    path = Path(path) if path is not None else project_root() / "benchmarks" / "results.md"
    if not path.is_file():
        return []
    text = path.read_text()
    header = _BENCH_DEVICE.match(text)
    if header and header.group(1) != device:
        return []
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = "latency" in line.lower()
            continue
        hit = _LATENCY_ROW.match(line.strip()) if inside else None
        if hit:
            size, t, s, x = hit.groups()
            rows.append({"size": size, "teacher_ms": float(t), "student_ms": float(s), "speedup": float(x)})
    return rows


def efficiency_table(reports: pd.DataFrame, latency: list[dict] | tuple = ()) -> pd.DataFrame:
    """DC-CNN teacher vs student: parameter counts (from a reconstruction report -- the KD-MRI
    teacher, any student-sized model -- else counted from the architectures; column
    ``source``), the reduction, and per latency dict (:func:`measure_latency`) the inference
    time in ms with the student's speed-up."""
    from kdmri.models.dccnn import build_dccnn, count_parameters

    df = reports
    if not df.empty:
        df = df[(df["task"].fillna("recon") == "recon") & (df["parameters"].fillna(0) > 0)]
        df = df.assign(_o=(df["method"] != "kdmri").astype(int)).sort_values(["_o", "method"])
    out = {}
    for label, role, roles in (("Teacher", "teacher", ("teacher",)),
                               ("Student", "student", ("student", "kd", "feature"))):
        hit = df[df["role"].isin(roles)] if not df.empty else df
        if len(hit):
            hit = hit.assign(_r=hit["role"].map(roles.index)).sort_values(["_o", "_r", "method"])
            out[label] = {"parameters": int(hit.iloc[0]["parameters"]),
                          "source": f"{hit.iloc[0]['method']}_{hit.iloc[0]['role']}/report.json"}
        else:
            out[label] = {"parameters": count_parameters(build_dccnn(role)), "source": "architecture"}
    t = out["Teacher"]["parameters"]
    out["Teacher"]["vs teacher"] = MISSING
    out["Student"]["vs teacher"] = f"{100 * (1 - out['Student']['parameters'] / t):.1f} % fewer"
    for lat in latency:
        col = f"latency {lat['size']} (ms)"
        out["Teacher"][col], out["Student"][col] = f"{lat['teacher_ms']:.1f}", f"{lat['student_ms']:.1f}"
        out["Teacher"][f"speed-up {lat['size']}"] = MISSING
        out["Student"][f"speed-up {lat['size']}"] = f"{lat['speedup']:.2f}x"
    table = pd.DataFrame.from_dict(out, orient="index")
    table.index.name = "model"
    return table


# =========================================================================== the papers' numbers

#: SFT-KD-Recon (Matcha et al., arXiv:2304.05057), PSNR dB: (data, model, standard teacher, SFT teacher).
SFT_PAPER: tuple[tuple[str, str, float, float], ...] = (
    ("MRBrainS 4x", "teacher", 40.05, 40.23),
    ("MRBrainS 4x", "AT-distilled student", 39.76, 40.07),
    ("Cardiac 4x", "AT-distilled student", 31.95, 32.03),
)


def kdmri_paper_table() -> pd.DataFrame:
    """KD-MRI's published table (PSNR dB / SSIM, from :mod:`kdmri.reporting.paper`; the last row is its
    super-resolution experiment, LR input in the ZF column): the paper's numbers, not this
    repository's."""
    from kdmri.datasets import paper_label
    from kdmri.reporting.paper import KDMRI_RECON, KDMRI_SR_CALGARY

    names = {"ZF": "ZF (SR: LR)", "LR": "ZF (SR: LR)", "teacher": "Teacher", "student": "Student",
             "kd": "KD student"}

    def cells(rows: Mapping[str, tuple[float, float]]) -> dict[str, str]:
        return {names[k]: f"{p:.2f} / {s:.4f}" for k, (p, s) in rows.items()}

    table = {f"{paper_label(d)} {acc}": cells(t.rows)
             for (d, acc), t in KDMRI_RECON.items()}
    table["Calgary-Campinas SR"] = cells(KDMRI_SR_CALGARY.rows)
    out = pd.DataFrame.from_dict(table, orient="index")
    out.index.name = "data, acc (paper)"
    return out


def sft_paper_table() -> pd.DataFrame:
    """SFT-KD-Recon's published PSNR (dB) with the standard and the SFT teacher: the paper's
    numbers, not this repository's."""
    table = pd.DataFrame(
        [{"data": d, "model": m, "standard teacher PSNR": f"{a:.2f}", "SFT teacher PSNR": f"{b:.2f}",
          "Δ PSNR": f"{b - a:+.2f}"} for d, m, a, b in SFT_PAPER]).set_index("data")
    table.index.name = "data (paper)"
    return table
