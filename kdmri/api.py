"""The Python API for the common case: distil any network into any student.

``kdmri.distil(teacher, student, train_data, val_data, method="at", pairs=[...], epochs=...)``
runs the training engine (:func:`kdmri.training.engine.fit` with its callbacks) on a stage
made for the call -- the same step, objective terms, feature losses and forward hooks as
``python -m kdmri train`` -- and returns the trained student and a report. Networks are
module objects, registered kinds (``"dccnn"``, ``"unet"``, ``"vdsr"``) or import paths
(``"package.module:Class"``); layers are module paths or kdmri feature names
(:mod:`kdmri.models.features`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from kdmri.checkpoint import load_weights
from kdmri.config import Config, seed_everything
from kdmri.data.views import Indexed
from kdmri.errors import ConfigError
from kdmri.models.blocks import count_parameters
from kdmri.models.registry import build_network
from kdmri.models.tasks import TASKS, Task
from kdmri.training.callbacks import Callback, Run, config_callbacks
from kdmri.training.engine import CheckpointWriter, CSVLog, ProgressBar, StageRunner, fit, optimiser
from kdmri.training.stages import StageSpec
from kdmri.training.strategy import default_strategy

#: ``method`` value that trains on the teacher's output alone (no feature term).
IMITATION = "imitation"


class KeepBest(Callback):
    """Keeps the weights of the epoch with the lowest validation loss, in memory."""

    def __init__(self):
        self.state: dict | None = None

    def on_epoch_end(self, state: dict) -> None:
        if state["improved"]:
            self.state = copy.deepcopy(state["model"].state_dict())


def _dataset(data: Dataset | str | Path, task: Task, cfg: Config, what: str) -> Dataset:
    if isinstance(data, (str, Path)):
        if not Path(data).is_dir():
            raise ConfigError(f"{what} {data}: not a folder of KD-MRI HDF5 volumes")
        data = task.base_dataset(cfg, Path(data))
    if not isinstance(data, Dataset) or len(data) == 0:
        raise ConfigError(f"{what}: expected a non-empty torch Dataset of slice dicts or a folder")
    return data if "index" in data[0] else Indexed(data)


def _task(task: str | None, data) -> Task:
    if task is not None:
        return TASKS.lookup(task)
    if isinstance(data, Dataset):
        return TASKS["recon" if "kspace" in data[0] else "sr"]
    return TASKS["recon"]


def distil(teacher: nn.Module | str, student: nn.Module | str, train_data: Dataset | str | Path,
           val_data: Dataset | str | Path | None = None, *, method: str = "at",
           pairs: Sequence[Sequence[str]] | None = None, epochs: int = 10, task: str | None = None,
           teacher_options: Mapping[str, Any] | None = None,
           student_options: Mapping[str, Any] | None = None,
           teacher_weights: Mapping | str | Path | None = None, feature_weight: float = 1.0,
           target_weight: float = 1.0, imitation_weight: float = 0.0, batch_size: int = 4,
           lr: float = 1e-3, lr_step: int | None = None, acc: str = "4x", seed: int = 42,
           device: str = "cpu", out_dir: str | Path | None = None, progress: bool = False,
           callbacks: Sequence[Callback | str] = (), **settings: Any) -> tuple[nn.Module, dict]:
    """Distil ``teacher`` (frozen) into ``student`` with the training engine.

    Args:
        teacher, student: an ``nn.Module``, a registered kind or ``"package.module:Class"``
            (built with ``teacher_options`` / ``student_options``).
        train_data, val_data: torch Datasets of slice dicts (``input``, ``target``, and
            ``kspace``, ``mask`` for reconstruction) or folders of KD-MRI HDF5 volumes
            (read at ``acc``); ``val_data=None`` validates on ``train_data``.
        method: a registered feature loss (``"at"``, ``"at_kdmri"``, ``"fitnet"``, ``"sp"``,
            ...) or ``"imitation"`` (output imitation only).
        pairs: ``[(student_layer, teacher_layer), ...]``, module paths or feature names;
            default: the student's own default pairs where the teacher has those layers.
        task: ``"recon"`` or ``"sr"``; default: ``recon`` when the data has k-space.
        teacher_weights: a checkpoint file or state dict loaded into the teacher (with a
            key-mismatch report).
        feature_weight, target_weight, imitation_weight: weights of the feature term, of
            L1 to the target and of L1 to the teacher's output.
        out_dir: where to write ``model.pt``, ``best_model.pt`` and ``train_log.csv``
            (default: nothing is written); with ``tensorboard=True``, also ``tensorboard/``.
        callbacks: more hooks of the loop (:class:`~kdmri.training.callbacks.Callback` objects or
            ``"package.module:Class"``), called after every epoch, as ``callbacks`` in a config.
        settings: any other :class:`~kdmri.config.Config` field (``at_mode``,
            ``feature_options``, ``feature_forms``, ``precision``, ...).

    Returns:
        ``(student, report)``: the student with the weights of its best validation epoch
        (L1 to the target; the training objective when ``target_weight`` is 0, as the
        feature stage selects), and ``{"task", "method", "pairs", "history", "best",
        "teacher_parameters", "student_parameters"}``.

    Example (a U-Net teacher with data consistency into a small DC-CNN, by module paths):

    >>> import tempfile, numpy as np, kdmri
    >>> from kdmri.data import write_volume
    >>> from kdmri.physics.masks import cartesian_mask
    >>> root = tempfile.mkdtemp()
    >>> yy, xx = np.meshgrid(np.linspace(-1, 1, 32), np.linspace(-1, 1, 24), indexing="ij")
    >>> vol = np.stack([np.exp(-(yy**2 + xx**2) * (2 + i)) for i in range(4)], -1)
    >>> for split in ("train", "val"):
    ...     _ = write_volume(f"{root}/{split}/v.h5", vol.astype("float32"),
    ...                      {4: cartesian_mask((32, 24), 4, seed=4)})
    >>> student, report = kdmri.distil(
    ...     "unet", "dccnn", f"{root}/train", f"{root}/val", method="at",
    ...     pairs=[("cascades.0.acts.1", "down_sample_layers.0")], epochs=2, batch_size=2,
    ...     teacher_options={"chans": 4, "num_pool_layers": 2, "dc": True},
    ...     student_options={"n_cascades": 2, "n_convs": 3, "channels": 8})
    >>> [row["epoch"] for row in report["history"]], report["pairs"]
    ([1, 2], [('cascades.0.acts.1', 'down_sample_layers.0')])
    >>> type(student).__name__, report["task"]
    ('DCCNN', 'recon')
    """
    only_imitation = method == IMITATION
    cfg = Config(acc=acc, epochs=epochs, batch_size=batch_size, lr=lr, lr_step=lr_step or epochs,
                 seed=seed, device=device, progress=progress, feature_pairs=None if pairs is None
                 else [list(p) for p in pairs], feature_loss="at" if only_imitation else method,
                 feature_weight=0.0 if only_imitation else feature_weight,
                 feature_target_weight=target_weight, imitation_weight=imitation_weight,
                 **settings)
    the_task = _task(task, train_data)
    spec = StageSpec("distil", the_task.name, "distil", "student",
                     (("feature", "feature_weight"), ("l1", "feature_target_weight"),
                      ("imitation", "imitation_weight")), teacher=True,
                     validate="l1" if target_weight else "objective",
                     description=f"kdmri.distil: {method}")
    strategy = default_strategy(cfg)
    runner = StageRunner(spec, cfg, strategy)
    train_ds = _dataset(train_data, the_task, runner.cfg, "train_data")
    val_ds = train_ds if val_data is None else _dataset(val_data, the_task, runner.cfg, "val_data")
    seed_everything(cfg.seed)
    teacher = build_network(teacher, teacher_options, "teacher")
    if teacher_weights is not None:
        load_weights(teacher, teacher_weights, "teacher_weights")
    model = build_network(student, student_options, "student").to(strategy.device)
    runner.setup(model, train_ds, teacher=teacher)
    optimizer, scheduler = optimiser(runner, model)
    state = {"epoch": 0, "history": [], "best": {"val_loss": math.inf, "epoch": -1},
             "model": model, "extra": runner.extra, "optimizer": optimizer, "scheduler": scheduler}
    best = KeepBest()
    hooks: list[Callback] = [best, ProgressBar(f"distil {method}", 0, cfg.epochs, progress)]
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        meta = {"config": runner.cfg.to_dict(), "stage": spec.name, "role": spec.role,
                "task": the_task.name}
        hooks[1:1] = [CheckpointWriter(out, meta), CSVLog(out / "train_log.csv")]
    hooks += config_callbacks(runner.cfg, Run(out, runner, val_ds), callbacks)
    try:
        fit(runner, model, train_ds, val_ds, optimizer, scheduler, state, cfg.epochs, hooks)
    finally:
        runner.close()
    if best.state is not None:
        model.load_state_dict(best.state)
    pairs_used = [tuple(p) for p in runner.feature_loss.pairs] if runner.feature_loss is not None else []
    return model, {"task": the_task.name, "method": method, "pairs": pairs_used,
                   "history": state["history"], "best": state["best"],
                   "teacher_parameters": count_parameters(teacher, trainable_only=False),
                   "student_parameters": count_parameters(model)}
