"""Evaluation: run a checkpoint over the validation set; write reconstructions and reports.

For an experiment folder ``experiments/<dataset>/acc_<acc>/<method>_<role>/`` it writes

* ``results/<volume>.h5`` with key ``reconstruction`` (H, W, S) (and ``slices``),
* ``metrics.csv``: one row per slice: volume, slice, psnr, ssim, nmse, hfn (per-slice
  metrics, SFT-KD-Recon style; data_range = max of the target slice),
* ``report.json``: per-metric mean and std over slices (``metrics``) and over volumes in
  the KD-MRI style (``volume_metrics``), slice and volume counts, the parameter count,
  the configuration, seed, library versions and git commit. Nothing time-dependent goes
  into the report, so the same seed on the same machine gives the same file.
* ``MODEL_CARD.md`` (not for the baselines): data, acceleration, mask, metrics, parameters,
  config summary, commit, intended use and limits (:func:`kdmri.evaluation.model_card.model_card`).

The network-free baseline (zero-filled for reconstruction, the low-resolution input for
super-resolution) is evaluated the same way with ``stage="zf"`` / ``"sr-lr"``.

Another checkpoint (``checkpoint=``, ``--checkpoint``) is evaluated into ``out`` (``--out``),
else into the checkpoint's folder, and never into a folder training writes (the stage's
own, or one holding a ``train_log.csv``): its report there belongs to that folder's model.
``pretrained:NAME`` names a published checkpoint (:mod:`kdmri.pretrained`), evaluated by
default into ``<experiments>/<dataset>/acc_<acc>/pretrained_<NAME>/``.

Under ``torchrun`` (several processes) rank 0 alone evaluates the whole validation set and
writes; the other processes wait for it and return its report.
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader

from kdmri.checkpoint import BEST, load_model
from kdmri.config import Config, seed_everything
from kdmri.errors import ConfigError
from kdmri.evaluation.model_card import model_card
from kdmri.io import atomic_path, atomic_text, write_csv
from kdmri.metrics import METRICS, slice_metrics, summarize, volume_metrics
from kdmri.models.dccnn import count_parameters
from kdmri.models.tasks import TASKS, Task
from kdmri.paths import project_root
from kdmri.pretrained import is_pretrained, pretrained_name, resolve_checkpoint
from kdmri.progress import progress_bar
from kdmri.training import train
from kdmri.training.stages import STAGES, get_stage, task_method
from kdmri.training.strategy import default_strategy, to_device

#: The training log :mod:`kdmri.training.engine` writes: it marks a folder training writes.
TRAIN_LOG = "train_log.csv"
#: Network-free baselines by evaluation name: ``zf`` (zero-filled), ``sr-lr`` (low resolution).
BASELINES: dict[str, Task] = {t.stage_prefix + t.baseline_role: t for t in TASKS.values()}


def library_versions() -> dict[str, str]:
    import h5py as _h5
    import skimage

    import kdmri

    return {"kdmri": kdmri.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "scikit-image": skimage.__version__, "h5py": _h5.__version__,
            "python": platform.python_version()}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def _resolve(cfg: Config, stage: str) -> tuple[Config, Task, str, bool]:
    """(configured cfg, task, role, is_baseline) for an evaluation target (``kd``, ``sr-kd``, ``zf``)."""
    if stage in BASELINES:
        task = BASELINES[stage]
        return cfg.replace(method=task_method(cfg, task)), task, task.baseline_role, True
    spec = get_stage(stage) if stage in STAGES else None
    if spec is None:
        raise ConfigError(f"stage {stage!r}: expected one of {sorted(STAGES)} or a baseline "
                          f"{sorted(BASELINES)}")
    return spec.configure(cfg), spec.task_obj, spec.role, False


def _write_h5(path: Path, recon: np.ndarray, slices: list[int]) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        fh.create_dataset("reconstruction", data=recon.astype(np.float32))
        fh.create_dataset("slices", data=np.asarray(slices, dtype=np.int64))


#: Evaluation on a named test set writes into ``<experiment>/test_<split>/``.
TEST_PREFIX = "test_"


def report_dir(experiment: Path | str, split: str = "validation") -> Path:
    """Where the evaluation of ``split`` is written: the experiment folder itself for the
    validation set, ``<experiment>/test_<split>`` for a named test set."""
    return Path(experiment) if split == "validation" else Path(experiment) / f"{TEST_PREFIX}{split}"


def output_folder(cfg: Config, role: str, checkpoint: Path | str | None = None,
                  out: Path | str | None = None, split: str = "validation") -> Path:
    """Where an evaluation writes: ``out``; else, for another ``checkpoint``, its folder;
    else the stage's folder (for a named test set ``split``, its :func:`report_dir` inside
    those two). :class:`ConfigError` when that is a folder training writes
    (the stage's own, or one holding a ``train_log.csv``) and the report would not be of
    that folder's own model."""
    stage_dir = cfg.experiment(role)
    folder = Path(out) if out is not None else report_dir(
        Path(checkpoint).parent if checkpoint else stage_dir, split)
    own = folder.resolve() == stage_dir.resolve()  # the stage's folder: its own checkpoint only
    other = checkpoint is not None and Path(checkpoint).resolve() != (stage_dir / BEST).resolve()
    if (own and other) or (not own and (folder / TRAIN_LOG).is_file()):
        raise ConfigError(f"evaluate{f' --checkpoint {checkpoint}' if checkpoint else ''}: would write "
                          f"its report into {folder}, the folder of a trained stage, whose report "
                          "belongs to its own model; pass --out FOLDER (another folder)")
    return folder


def evaluate(cfg: Config, stage: str, checkpoint: Path | str | None = None,
             save_reconstructions: bool = True, split: str = "validation",
             out: Path | str | None = None) -> dict:
    """Evaluate the best checkpoint of ``stage`` (or the baseline, or ``checkpoint``) on the
    validation set, or on the named test set ``split`` (the folder ``<data path>/<split>``,
    e.g. ``shift``), writing into :func:`output_folder` (for a test set ``<experiment>/test_<split>/``).

    Returns the report dict (also written to ``report.json``).
    """
    cfg, task, role, baseline = _resolve(cfg, stage)
    if not baseline and is_pretrained(checkpoint):  # pretrained:NAME -> pretrained_<NAME>/
        if out is None:
            out = report_dir(cfg.experiment(pretrained_name(checkpoint), "pretrained"), split)
        checkpoint = resolve_checkpoint(checkpoint)
    out_dir = output_folder(cfg, role, None if baseline else checkpoint, out, split)
    strategy = default_strategy(cfg)
    if not strategy.is_writer:  # under torchrun: rank 0 evaluates and writes, once
        strategy.barrier()
        return json.loads((out_dir / "report.json").read_text())
    report = _evaluate(cfg, stage, task, role, baseline, checkpoint, save_reconstructions, out_dir,
                       strategy.device, split)
    strategy.barrier()
    return report


def _evaluate(cfg: Config, stage: str, task: Task, role: str, baseline: bool, checkpoint,
              save_reconstructions: bool, out_dir: Path, device: torch.device,
              split: str = "validation") -> dict:
    seed_everything(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, params, ckpt_path, train_info, network = None, 0, None, {}, None
    if not baseline:
        ckpt_path = Path(checkpoint) if checkpoint else cfg.experiment(role) / BEST
        model, ckpt = load_model(ckpt_path, device)
        model.eval()
        params = count_parameters(model)
        if hasattr(model, "inference_parameters"):
            params = model.inference_parameters()
        train_info = {"best_epoch": ckpt.get("epoch"), "best_val_loss": ckpt.get("val_loss")}
        arch = ckpt.get("arch") or {}
        network = arch.get("target") or arch.get("kind")  # an import path, else the kind
    ds = task.dataset(cfg, split)
    preds: dict[str, dict[int, np.ndarray]] = {}
    targets: dict[str, dict[int, np.ndarray]] = {}
    rows = []
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=False)  # every slice, in order
    with torch.no_grad():
        for batch in progress_bar(loader, desc=f"evaluate {stage}", enabled=cfg.progress, leave=False):
            b = to_device(batch, device)
            if baseline:
                pred = b["input"]
            else:
                pred = task.forward(model, b, features=False).image
            pred = pred.float().cpu().numpy()[:, 0]
            target = batch["target"].numpy()[:, 0]
            for i, (vol, s) in enumerate(zip(batch["volume"], batch["slice"].tolist())):
                preds.setdefault(vol, {})[s] = pred[i]
                targets.setdefault(vol, {})[s] = target[i]
                rows.append({"volume": vol, "slice": s, **slice_metrics(target[i], pred[i])})
    vol_rows = []
    for vol in sorted(preds):
        slices = sorted(preds[vol])
        p = np.stack([preds[vol][s] for s in slices], axis=-1)
        t = np.stack([targets[vol][s] for s in slices], axis=-1)
        vol_rows.append(volume_metrics(t, p))
        if save_reconstructions:
            _write_h5(out_dir / "results" / f"{vol}.h5", p, slices)
    write_csv(out_dir / "metrics.csv", rows, ["volume", "slice", *METRICS])
    report = {
        "dataset": cfg.dataset, "acc": cfg.acc, "task": task.name, "method": cfg.method,
        "role": role, "stage": stage, "split": split, "network": network,
        "label": task.baseline_label if baseline else role,
        "checkpoint": str(ckpt_path.name) if ckpt_path else None,
        "n_slices": len(rows), "n_volumes": len(vol_rows),
        "parameters": params,
        "metrics": {m: summarize([r[m] for r in rows]) for m in METRICS},
        "volume_metrics": {m: summarize([r[m] for r in vol_rows]) for m in METRICS},
        "metrics_note": "metrics: per slice (SFT-KD-Recon style); volume_metrics: per volume "
                        "(KD-MRI style, SSIM over the volume with slices as channels)",
        "train": train_info,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "mask_source": cfg.mask_source,
        "versions": library_versions(),
        "git_commit": git_commit(),
    }
    atomic_text(out_dir / "report.json", json.dumps(report, indent=2, sort_keys=True))
    if not baseline:  # a model card beside every evaluated checkpoint
        atomic_text(out_dir / "MODEL_CARD.md", model_card(report))
    return report


def train_then_evaluate(cfg: Config, stages: str | Sequence[str], save_reconstructions: bool = True,
                        split: str = "validation") -> dict:
    """Train ``stages`` in order (a finished stage returns at once) and evaluate the last one:
    the one train-then-evaluate step of the pipeline, the grids, the fast-path check, the SR
    recipe choice and the study. Returns the evaluation report."""
    stages = (stages,) if isinstance(stages, str) else tuple(stages)
    for stage in stages:
        train(cfg, stage)
    return evaluate(cfg, stages[-1], save_reconstructions=save_reconstructions, split=split)
