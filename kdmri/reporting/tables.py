"""The papers' tables built from this repository's evaluation reports.

* :class:`Row`, :data:`RECON_ROWS`, :data:`SR_ROWS`: which ``(method, role)`` experiment
  fills which row of the papers' layout (ZF, teacher, student, KD student, the SFT rows);
* :func:`paper_table` / :func:`paper_tables` / :func:`paper_tables_markdown`: one row per
  :class:`Row`, columns per acceleration, with the entries that are missing named
  (:func:`missing_entries`), not fatal;
* :func:`available_experiments`: which rows of a configuration have been trained/evaluated;
* :func:`efficiency_table`: parameter counts and inference latency of teacher and student.

The published numbers live in :mod:`kdmri.reporting.paper`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kdmri.data.sr_settings import sr_method
from kdmri.datasets.registry import sr_settings
from kdmri.reporting.reports import DIGITS, MISSING, mean_std, to_markdown


@dataclass(frozen=True)
class Row:
    """A row of a paper-style table: the first ``(method, role)`` of ``candidates`` that has a
    report fills it; ``source`` says what produces it (named when the row is missing);
    ``network`` is the network it runs at inference (``"teacher"`` / ``"student"``, the key of
    a latency measurement; ``None``: no network, e.g. ZF)."""

    label: str
    candidates: tuple[tuple[str, str], ...]
    source: str
    network: str | None = None


#: Reconstruction rows: the KD-MRI table (ZF, teacher, student, KD student) plus SFT-KD-Recon's
#: pair of students distilled with attention transfer from the standard and from the SFT
#: teacher (notebook 05; they may train for ``kd_epochs``, so compare them with each other).
RECON_ROWS: tuple[Row, ...] = (
    Row("ZF", (("kdmri", "zf"),), "notebook 03 (evaluate stage zf)"),
    Row("Teacher", (("kdmri", "teacher"),), "notebook 03 (stage teacher)", "teacher"),
    Row("Student", (("kdmri", "student"),), "notebook 03 (stage student)", "student"),
    Row("KD student", (("kdmri", "kd"),), "notebook 04 (stages feature, kd)", "student"),
    # the SFT teacher runs the teacher's network at inference (its branches only train)
    Row("SFT teacher", (("sft", "teacher"),), "notebook 05 (stage sft-teacher)", "teacher"),
    Row("KD student (05, standard teacher)", (("std-at_kdmri", "kd"),),
        "notebook 05 (feature_losses with 'at_kdmri')", "student"),
    Row("SFT-KD student", (("sft-at_kdmri", "kd"), ("sft", "kd")),
        "notebook 05 (feature_losses with 'at_kdmri')", "student"),
)

#: Super-resolution rows (KD-MRI's VDSR extension).
#: Their method is ``sr-keep<sr_keep>`` (:func:`kdmri.data.sr_settings.sr_method`) for the settings of
#: :func:`kdmri.datasets.registry.sr_settings`; ``sr`` is the name of runs made before it.
_SR_METHODS = tuple(sr_method(k) for k in dict.fromkeys(sr_settings().values())) + ("sr",)
SR_ROWS: tuple[Row, ...] = tuple(
    Row(label, tuple((m, role) for m in _SR_METHODS), source) for label, role, source in (
        ("LR", "lr", "notebook 06 (evaluate stage sr-lr)"),
        ("Teacher", "teacher", "notebook 06 (stage sr-teacher)"),
        ("Student", "student", "notebook 06 (stage sr-student)"),
        ("KD student", "kd", "notebook 06 (stages sr-feature, sr-kd)")))


def acc_key(acc: str) -> float:
    """Sort key of an acceleration tag (``"4x"`` < ``"5x"`` < ``"10x"``)."""
    try:
        return float(str(acc).rstrip("x"))
    except ValueError:
        return float("inf")


def pick_row(reports: pd.DataFrame, row: Row) -> pd.Series | None:
    """The report filling ``row`` (its first candidate with a report), ``None`` if none has."""
    for method, role in row.candidates:
        hit = reports[(reports["method"] == method) & (reports["role"] == role)]
        if not hit.empty:
            return hit.iloc[0]
    return None


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


def _cell(r: pd.Series | None, metric: str, level: str) -> str:
    prefix = "volume_" if level == "volume" else ""
    mean, std = (r.get(f"{prefix}{metric}_mean"), r.get(f"{prefix}{metric}_std")) if r is not None else (
        None, None)
    if mean is None or pd.isna(mean):
        return MISSING
    digits = DIGITS.get(metric, 4)
    return f"{mean:.{digits}f}" if std is None or pd.isna(std) else mean_std(mean, std, digits)


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
            r = pick_row(df[df["acc"] == acc], row)
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
            if pick_row(df[df["acc"] == acc], row) is None:
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


def find_row_experiments(cfg, rows: tuple[Row, ...], needs: str,
                         ) -> tuple[dict[str, tuple[str, str, Path]], list[str]]:
    """``({label: (method, role, folder)}, missing)``: for each of ``rows`` the first candidate
    experiment folder of ``cfg`` holding the file ``needs``, and one line per row without one."""
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
    found, missing = find_row_experiments(cfg, rows, needs)
    return {label: folder for label, (_, _, folder) in found.items()}, missing


def efficiency_table(reports: pd.DataFrame, latency: list[dict] | tuple = ()) -> pd.DataFrame:
    """DC-CNN teacher vs student: parameter counts (from a reconstruction report -- the KD-MRI
    teacher, any student-sized model -- else counted from the architectures; column
    ``source``), the reduction, and per latency dict
    (:func:`kdmri.reporting.latency.measure_latency`) the inference time in ms with the
    student's speed-up."""
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
