"""The batch summary: ``<out>/summary.md`` and ``summary.json``, shared by every batch
that writes into ``<out>``.

``summary.json`` holds one row per executed notebook: the params file as given, the
notebook, status, seconds, the kernel's peak memory, its output file and the resolved
params file. A batch *merges* its rows into the file: the rows of earlier batches are
kept, and a row of the same notebook output (the same params file's run folder and
notebook) is replaced by the new one, so a second batch into ``runs/`` does not erase the
first one's summary. The read-merge-write runs under the folder's lock
(:func:`kdmri.locks.folder_lock` on ``<out>/.lock``), so two batches finishing at once
both keep their rows. ``summary.md`` is rendered from the merged rows: the run table and,
per params file, the results table of every evaluated model
(:func:`kdmri.reporting.reports.collect_reports` over that dataset and acceleration) with
the paired KD - student difference when both exist.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

from kdmri.config import Config, load_config
from kdmri.errors import KDMRIError
from kdmri.io import atomic_text
from kdmri.locks import folder_lock
from kdmri.paths import project_relative, project_root
from kdmri.training.calibration import RunTiming

MARKDOWN, JSON = "summary.md", "summary.json"


def summary_row(result, timing: RunTiming | None = None) -> dict:
    """The ``summary.json`` row of a :class:`kdmri.tools.batch.Result`; with the batch's
    ``timing`` also ``reference_seconds`` (its seconds scaled to the reference calibration)
    and ``batch`` (the batch's wall time and calibration at start and end)."""
    job = result.job
    row = {"params": job.params, "notebook": job.notebook.name, "ok": result.ok,
           "seconds": result.seconds, "peak_rss_mb": result.peak_rss_mb, "error": result.error,
           "output": project_relative(job.output),
           "params_file": project_relative(job.parameters["params_file"])}
    if timing is not None:
        row["reference_seconds"] = round(result.seconds * timing.reference_ms / timing.calibration_ms, 1)
        row["batch"] = timing.to_dict()
    return row


def merge_rows(earlier: Sequence[dict], rows: Sequence[dict]) -> list[dict]:
    """``earlier`` without the rows whose ``output`` is one of ``rows``', then ``rows``."""
    mine = {r["output"] for r in rows}
    return [r for r in earlier if r.get("output") not in mine] + list(rows)


def read_rows(path: Path) -> list[dict]:
    """The rows of ``summary.json`` (none when absent); an unreadable file is moved aside
    to ``summary.json.unreadable`` (with a warning), never overwritten."""
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text())
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            return rows
    except (OSError, ValueError):
        pass
    aside = path.with_name(path.name + ".unreadable")
    path.replace(aside)
    warnings.warn(f"{path}: not a list of run rows; moved to {aside}, starting a new summary",
                  stacklevel=2)
    return []


def _results_section(params: str, cfg: Config) -> list[str]:
    from kdmri.reporting.reports import collect_reports, results_table, to_markdown
    from kdmri.reporting.statistics import paired_comparison
    from kdmri.tutorial import describe_difference

    folder = cfg.experiments_path / cfg.dataset / f"acc_{cfg.acc}"
    lines = [f"## {cfg.dataset} {cfg.acc} ({params})", ""]
    reports = collect_reports(folder) if folder.is_dir() else None
    if reports is None or reports.empty:
        return lines + [f"No evaluation reports under `{project_relative(folder)}`.", ""]
    try:
        lines += ["PSNR / SSIM per slice, mean ± std over the validation slices "
                  f"(reports under `{project_relative(folder)}`).", "",
                  to_markdown(results_table(reports)), ""]
    except KDMRIError as exc:
        lines += [f"Results table unavailable: {exc}", ""]
    kd, student = cfg.experiment("kd"), cfg.experiment("student")
    if (kd / "metrics.csv").is_file() and (student / "metrics.csv").is_file():
        try:
            lines += [describe_difference(paired_comparison(kd, student)), ""]
        except KDMRIError as exc:
            lines += [f"Paired KD - student comparison unavailable: {exc}", ""]
    return lines


def _params_section(row: dict) -> list[str]:
    """The results section of the params file of ``row`` (from its resolved params file)."""
    path = Path(row["params_file"])
    path = path if path.is_absolute() else project_root() / path
    try:
        cfg = load_config(path)
    except KDMRIError as exc:
        return [f"## {row['params']}", "", f"Results unavailable: {exc}", ""]
    return _results_section(row["params"], cfg)


def summary_markdown(rows: Sequence[dict], timing: RunTiming | None = None) -> str:
    """The run table of ``rows`` (``summary.json`` rows) and the results table of each of
    their params files, as markdown; with ``timing``, the latest batch's wall time and the
    machine's calibration (:mod:`kdmri.training.calibration`) first."""
    lines = ["# Batch summary", ""]
    if timing is not None:
        lines += ["Latest batch:", "", *(f"* {line}" for line in timing.lines()), ""]
    lines += [
             "| params | notebook | status | minutes | kernel peak RSS (MB) | output |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        status = "ok" if r["ok"] else f"FAILED: {r['error']}".replace("|", "\\|")
        mem = f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") is not None else "n/a"
        lines.append(f"| {r['params']} | {r['notebook']} | {status} | {r['seconds'] / 60:.1f} | {mem} "
                     f"| {r['output']} |")
    lines.append("")
    seen = set()
    for r in rows:
        if r.get("params_file") and r["params_file"] not in seen:  # rows of older kdmri lack it
            seen.add(r["params_file"])
            lines += _params_section(r)
    return "\n".join(lines)


def write_summary(results: Sequence, out: Path, timing: RunTiming | None = None) -> tuple[str, Path]:
    """Merge ``results`` into ``<out>/summary.json`` and rewrite ``summary.md`` from it,
    under ``<out>``'s lock; returns (markdown, path of summary.md). ``timing``: the batch's
    wall time with its calibration (added to its rows and stated in summary.md)."""
    out = Path(out)
    with folder_lock(out, "batch summary"):
        rows = merge_rows(read_rows(out / JSON), [summary_row(r, timing) for r in results])
        text = summary_markdown(rows, timing)
        atomic_text(out / JSON, json.dumps(rows, indent=2) + "\n")
        atomic_text(out / MARKDOWN, text + "\n")
    return text, out / MARKDOWN
