"""Callbacks of the training loop beyond checkpoints, log and progress bar: experiment
tracking and the user's own.

:class:`Callback` is the base of every hook :func:`kdmri.training.engine.fit` calls
(``on_epoch_end(state)`` after each epoch on the writing process, ``on_end(state)`` once at
the end; ``state`` holds ``epoch``, ``row`` (this epoch's log row), ``history``, ``best``,
``improved``, ``model``, ``optimizer``, ``scheduler``). A run adds

* ``tensorboard: true`` -> :class:`TensorBoardLog`: event files in
  ``<experiment>/tensorboard/`` with every logged number (losses, validation PSNR, learning
  rate, seconds) and one validation reconstruction per epoch as an image
  (``tensorboard --logdir experiments/``). It needs the ``tensorboard`` package (the
  ``tracking`` extra, pinned in requirements.lock);
* ``callbacks: ["package.module:Class", ...]`` -> each class built with no arguments (or
  ``Class(run)`` when it takes one: :class:`Run` says where and what is trained);
* from Python, ``kdmri.distil(..., callbacks=[obj or "package.module:Class"])``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from kdmri.errors import ConfigError
from kdmri.models.registry import import_object
from kdmri.training.strategy import to_device

#: Folder of the TensorBoard event files inside an experiment folder.
TENSORBOARD_DIR = "tensorboard"


class Callback:
    """Hooks of :func:`~kdmri.training.engine.fit` (see the module docstring)."""

    def on_epoch_end(self, state: dict) -> None:
        pass

    def on_end(self, state: dict) -> None:
        pass


@dataclass(frozen=True)
class Run:
    """What a callback may want to know: the experiment folder, the stage runner (task,
    config, device), the validation set and the epoch training starts from."""

    out_dir: Path | None
    runner: object
    val_ds: Dataset
    start: int = 0


def summary_writer(log_dir: Path, purge_step: int | None = None):
    """A ``torch.utils.tensorboard.SummaryWriter``; one ConfigError when tensorboard is absent."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ConfigError(f"tensorboard: true needs the tensorboard package ({exc}); install it with "
                          "`pip install -e .[tracking]` (tensorboard==2.21.0 in requirements.lock)") from None
    return SummaryWriter(str(log_dir), purge_step=purge_step)


def _tag(key: str) -> str:
    for prefix in ("train_", "val_"):
        if key.startswith(prefix):
            return f"{prefix[:-1]}/{key[len(prefix):]}"
    return {"lr": "learning_rate", "seconds": "time/seconds_per_epoch"}.get(key, key)


class TensorBoardLog(Callback):
    """Every number of the epoch's log row as a scalar, and the first validation slice as an
    image (input | reconstruction | target, scaled by the target's maximum) each epoch."""

    def __init__(self, run: Run):
        self.runner = run.runner
        self.log_dir = Path(run.out_dir) / TENSORBOARD_DIR
        self.writer = summary_writer(self.log_dir, purge_step=run.start + 1 if run.start else None)
        self.batch = next(iter(DataLoader(run.val_ds, batch_size=1)))

    @torch.no_grad()
    def panel(self, model: torch.nn.Module) -> np.ndarray:
        """``(1, H, 3W)`` in [0, 1]: input, reconstruction, target of the first validation slice."""
        batch = to_device(self.batch, self.runner.device)
        was_training = model.training
        model.eval()
        try:
            out = self.runner.task.forward(model, batch, False).image.float()
        finally:
            model.train(was_training)
        target = batch["target"].float()
        images = [batch["input"].float(), out, target]
        size = target.shape[-2:]
        images = [torch.nn.functional.interpolate(x, size=size) if x.shape[-2:] != size else x
                  for x in images]
        scale = target.abs().max().clamp_min(1e-8)
        return (torch.cat(images, dim=-1)[0] / scale).clamp(0, 1).cpu().numpy()

    def on_epoch_end(self, state: dict) -> None:
        row, epoch = state["row"], state["epoch"]
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(_tag(key), value, epoch)
        self.writer.add_image("validation/input_reconstruction_target", self.panel(state["model"]),
                              epoch, dataformats="CHW")
        self.writer.flush()

    def on_end(self, state: dict) -> None:
        self.writer.close()


def import_callback(target, run: Run, what: str = "callbacks") -> Callback:
    """A callback from an object, or an import path ``"package.module:Class"`` built as
    ``Class(run)`` when its constructor takes an argument, else ``Class()``."""
    obj = target
    if isinstance(target, str):
        if ":" not in target:
            raise ConfigError(f"{what} entry {target!r}: expected an import path 'package.module:Class'")
        obj = import_object(target, f"{what} entry")
        if inspect.isclass(obj):
            takes = [p for p in inspect.signature(obj).parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            try:
                obj = obj(run) if takes else obj()
            except TypeError as exc:
                raise ConfigError(f"{what} entry {target!r}: cannot build it ({exc})") from None
    missing = [m for m in ("on_epoch_end", "on_end") if not callable(getattr(obj, m, None))]
    if missing:
        raise ConfigError(f"{what} entry {target!r}: {type(obj).__name__} lacks {missing}; subclass "
                          "kdmri.training.callbacks.Callback")
    return obj


def config_callbacks(cfg, run: Run, extra=()) -> list[Callback]:
    """The callbacks a configuration asks for: :class:`TensorBoardLog` when ``cfg.tensorboard``,
    then each of ``cfg.callbacks``, then ``extra`` (objects or import paths)."""
    entries = list(cfg.callbacks or [])
    if not all(isinstance(e, str) for e in entries):
        raise ConfigError(f"callbacks={cfg.callbacks!r}: expected a list of import paths "
                          "'package.module:Class'")
    found: list[Callback] = []
    if cfg.tensorboard:
        if run.out_dir is None:
            raise ConfigError("tensorboard: true needs a folder to write into (kdmri.distil: out_dir=...)")
        found.append(TensorBoardLog(run))
    return found + [import_callback(e, run) for e in [*entries, *extra]]
