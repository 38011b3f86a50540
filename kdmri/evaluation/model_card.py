"""A model card (``MODEL_CARD.md``) for an evaluated checkpoint, from its ``report.json``.

:func:`kdmri.evaluation.evaluate.evaluate` writes it beside every evaluated checkpoint, after
``report.json``, atomically. :func:`model_card` only formats the report dict: no clock, no
file access, so the same report always gives the same card.
"""

from __future__ import annotations

import math

from kdmri.datasets.registry import DATASETS

#: How the card names a network kind (``report["network"]``: the checkpoint's arch kind, or
#: the import path of a network kdmri does not register).
NETWORK_NAMES = {"dccnn": "DC-CNN", "vdsr": "VDSR", "sft": "SFT-KD-Recon teacher (DC-CNN)",
                 "unet": "U-Net (fastMRI form)"}

#: Config fields summarised on the card (the full config is in report.json): every stage,
#: then the fields that matter for a stage whose name contains the key (``"sr"``: the SR task).
SUMMARY_FIELDS = ("dataset", "acc", "method", "epochs", "batch_size", "lr", "lr_step", "lr_gamma",
                  "seed", "mask")
ROLE_FIELDS = {
    "feature": ("feature_loss", "at_mode", "feature_weight", "feature_target_weight", "feature_init"),
    "kd": ("imitation_weight", "imitation_reduction", "kd_init", "kd_feature_weight"),
    "sft": ("sft_branch_weight", "sft_imitation_weight"),
    "sr": ("sr_keep", "sr_patch", "sr_feature_target_weight"),
}


def _summary_fields(stage: str, task: str) -> tuple[str, ...]:
    extra = ROLE_FIELDS.get("sr", ()) if task == "sr" else ()
    for key, fields in ROLE_FIELDS.items():
        if key != "sr" and key in stage:
            extra += fields
    return SUMMARY_FIELDS + extra


def _pm(stat: dict | None, digits: int) -> str:
    if not stat:
        return "n/a"
    mean, std = stat.get("mean"), stat.get("std")
    if mean is None or not math.isfinite(mean):
        return str(mean)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _latency(report: dict) -> str | None:
    lat = report.get("latency_ms") or report.get("latency")
    if isinstance(lat, (int, float)):
        return f"{lat:.1f} ms per slice"
    if isinstance(lat, dict) and lat:
        return ", ".join(f"{k}: {v:.1f} ms" if isinstance(v, (int, float)) else f"{k}: {v}"
                         for k, v in sorted(lat.items()))
    return None


def model_card(report: dict) -> str:
    """Markdown model card of an evaluation report (the dict ``evaluate`` returns).

    Sections: model, data, acceleration and mask, metrics (mean ± std PSNR/SSIM per slice
    and per volume), parameters, latency (only when the report has ``latency_ms``), config
    summary, git commit, intended use and limits.
    """
    cfg = report.get("config") or {}
    dataset = report.get("dataset", cfg.get("dataset", "?"))
    acc = report.get("acc", cfg.get("acc", "?"))
    task = report.get("task", "recon")
    role = report.get("role", "?")
    sr = task == "sr"
    network = NETWORK_NAMES.get(report.get("network"), report.get("network"))
    what = f"{network or ('VDSR' if sr else 'DC-CNN')} " + ("super-resolution network" if sr
                                                          else "reconstruction network")
    mask = cfg.get("mask") or f"the mask stored in each HDF5 file (mask_{acc})"
    spec = DATASETS.get(dataset)  # what the data is, and its caveat: the dataset's own spec
    data_note = spec.describe() if spec is not None else f"the '{dataset}' dataset"
    m, vm = report.get("metrics") or {}, report.get("volume_metrics") or {}
    lines = [
        f"# Model card: {report.get('method', '?')} {role} ({dataset}, {acc})", "",
        "Written by `kdmri evaluate` from `report.json` in this folder (which has every figure "
        "and the full configuration).", "",
        "## Model", "",
        f"* {what}, stage `{report.get('stage', role)}`, checkpoint `{report.get('checkpoint')}`"
        + (f" (best epoch {report['train']['best_epoch']})"
           if (report.get("train") or {}).get("best_epoch") else ""),
        f"* Parameters (used at inference): {report.get('parameters', 0):,}",
        "", "## Data", "",
        f"* Trained and validated on {data_note}; "
        f"data root `{cfg.get('data_root') or 'datasets/' + dataset}`.",
        "* Intensities scaled to [0, 1] per volume (divided by the volume maximum).",
    ]
    if sr:
        lines.append(f"* Input: low-resolution image keeping the central {cfg.get('sr_keep')} x "
                     f"{cfg.get('sr_keep')} block of centred k-space.")
    else:
        lines += [f"* Acceleration: {acc}", f"* Mask: {mask} (unshifted 1-D Cartesian, "
                  "phase encode along the last axis)"]
    lines += [
        "", f"## Metrics (validation, {report.get('n_slices', '?')} slices, "
        f"{report.get('n_volumes', '?')} volumes)", "",
        "| | PSNR (dB) | SSIM |", "|---|---|---|",
        f"| per slice, mean ± std | {_pm(m.get('psnr'), 2)} | {_pm(m.get('ssim'), 4)} |",
        f"| per volume, mean ± std | {_pm(vm.get('psnr'), 2)} | {_pm(vm.get('ssim'), 4)} |",
        "", "Per slice: SFT-KD-Recon style, data_range = maximum of each target slice. Per volume: "
        "KD-MRI style. Standard deviations are population (ddof = 0).",
    ]
    latency = _latency(report)
    if latency:
        lines += ["", "## Latency", "", f"* {latency}"]
    lines += ["", "## Configuration (summary)", "", "| field | value |", "|---|---|"]
    lines += [f"| {k} | `{cfg[k]}` |" for k in _summary_fields(str(report.get("stage", role)), task)
              if k in cfg and cfg[k] is not None]
    versions = report.get("versions") or {}
    lines += [
        "", "## Provenance", "",
        f"* git commit: `{report.get('git_commit', 'unknown')}`",
        f"* seed: {report.get('seed', cfg.get('seed'))}",
    ]
    if versions:
        lines.append("* versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    lines += [
        "", "## Intended use and limits", "",
        "* **Research use only. Not for clinical use** and not for diagnosis: no regulatory "
        "review, no validation on patients.",
        f"* Trained on {dataset} at {acc}" + ("" if sr else f" with {mask}")
        + "; expect worse results on other anatomy, contrasts, field strengths, sizes, masks or "
        "accelerations, and on multi-coil or complex-valued data.",
    ]
    if spec is not None and spec.limits:
        lines.append(f"* {spec.limits}")
    lines += ["* Retrospective undersampling of magnitude images only; a reconstruction can "
              "look plausible and still be wrong (hallucinated or removed detail).", ""]
    return "\n".join(lines)
