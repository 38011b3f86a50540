"""One engine trains every stage (``python -m kdmri train --stage <stage>``).

The stages are data (:mod:`kdmri.training.stages`); :class:`StageRunner` turns one into
a model, a frozen teacher, an initialisation and an objective; :func:`fit` is the loop,
with callbacks for checkpoints, the CSV log and the progress bar (and TensorBoard and the
user's own: :mod:`kdmri.training.callbacks`), and a *strategy*
(:mod:`kdmri.training.strategy`) that decides device placement, the sampler and which
process writes files. The benchmark reuses :meth:`StageRunner.step`.

Every stage: Adam + StepLR, model selection on the validation loss (L1 to the target, or
the training objective where the stage says so), the validation PSNR per
epoch (``val_psnr``, mean over slices; for learning curves, never for selection),
``model.pt`` (resumable: model, loss modules, optimiser, scheduler, history, best record)
and ``best_model.pt`` written
atomically every epoch, ``train_log.csv`` rewritten every epoch, the resolved
``config.yaml`` beside them, a tqdm progress bar. Shuffling is seeded per epoch from
``seed`` so a run resumed after epoch k ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kdmri.checkpoint import BEST, LAST, arch_of, load_checkpoint, load_model, load_network
from kdmri.config import Config, check_resumable, save_config, seed_everything
from kdmri.data.views import crop_like
from kdmri.distill.losses import feature_loss_from_config, feature_probe
from kdmri.distill.objective import Objective, TermContext
from kdmri.errors import DataError
from kdmri.io import atomic_save, write_csv
from kdmri.locks import folder_lock
from kdmri.metrics import psnr
from kdmri.models.blocks import ReconOutput
from kdmri.models.features import FeatureRecorder, layer_names, record_all
from kdmri.models.tasks import default_feature_pairs
from kdmri.pretrained import resolve_checkpoint
from kdmri.progress import progress_bar
from kdmri.training import identity, teacher_cache
from kdmri.training.callbacks import Callback, Run, config_callbacks
from kdmri.training.stages import StageSpec, get_stage, initialise
from kdmri.training.strategy import Strategy, default_strategy, to_device

#: PSNR of a slice predicted exactly (instead of inf) in the per-epoch validation mean.
PSNR_CAP = 100.0
#: Largest teacher-output cache kept in memory (bytes); above it the teacher runs on the fly.
TEACHER_CACHE_LIMIT = 2 * 1024**3


class StageRunner:
    """A stage spec made concrete for one configuration: network, teacher, objective."""

    def __init__(self, spec: StageSpec, cfg: Config, strategy: Strategy):
        self.spec, self.cfg, self.strategy = spec, spec.configure(cfg), strategy
        self.task = spec.task_obj
        self.device = strategy.device
        self.objective = Objective.from_spec(spec.objective, self.cfg)
        self.extra = nn.ModuleList()  # trainable loss modules (e.g. FitNets regressors)
        self.teacher: nn.Module | None = None
        self.feature_loss: nn.Module | None = None
        self.cache: torch.Tensor | None = None  # the teacher's output images (no feature term)
        self.feature_cache = None  # the teacher's images and feature targets (teacher_cache.py)
        self.recorders: dict[str, FeatureRecorder] = {}  # forward hooks of the paired layers

    @property
    def experiment(self) -> Path:
        return self.spec.experiment(self.cfg)

    def build_model(self) -> nn.Module:
        return self.task.build(self.spec.arch, self.cfg)

    def forward(self, model: nn.Module, batch: dict, features: bool = False):
        if self.spec.arch == "sft" and model.training:
            return model(batch["input"], batch["kspace"], batch["mask"], False, branches=True)
        return self._run("student", model, batch, features)

    def _run(self, side: str, model: nn.Module, batch: dict, features: bool):
        """The task's forward; with ``features``, the paired layers' outputs recorded by the
        forward hooks (:class:`~kdmri.models.features.FeatureRecorder`) as its features."""
        recorder = self.recorders.get(side) if features else None
        if recorder is None:
            return self.task.forward(model, batch, features)
        recorder.features = {}
        out = self.task.forward(model, batch, False)
        return out._replace(features=recorder.features)

    # ---- set-up: teacher, initialisation, feature loss, teacher cache
    def load_teacher(self) -> nn.Module:
        """``cfg.teacher_checkpoint`` (any checkpoint or state dict; network ``teacher_model``
        or the stored arch), else the teacher stage's best checkpoint."""
        cfg = self.cfg
        if cfg.teacher_checkpoint:
            teacher, _ = load_network(resolve_checkpoint(cfg.teacher_checkpoint), cfg.teacher_model,
                                      cfg.teacher_model_options, self.device)
        else:
            teacher, _ = load_model(self.spec.teacher_path(cfg), self.device)
        return self.freeze(teacher)

    def freeze(self, teacher: nn.Module) -> nn.Module:
        teacher = self.strategy.prepare_frozen(teacher.to(self.device))
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    def setup(self, model: nn.Module, train_ds: Dataset, teacher: nn.Module | None = None) -> None:
        """Load the teacher (or freeze the one given), initialise ``model``, build the feature
        loss, hook its layers and compute the cache."""
        if self.spec.teacher and self.objective.uses_teacher:  # not when its terms are weighted 0
            self.teacher = self.freeze(teacher) if teacher is not None else self.load_teacher()
        initialise(model, self.cfg, self.spec, self.device)
        if "feature" in self.objective.names:
            self.feature_loss = self.build_feature_loss(model, train_ds)
            self.extra.append(self.feature_loss)
            students, teachers = layer_names(self.feature_loss.pairs)
            self.recorders = {"student": FeatureRecorder(model, students, "student").attach(),
                              "teacher": FeatureRecorder(self.teacher, teachers, "teacher").attach()}
        if self.teacher is not None and self.cfg.teacher_cache and not self.objective.needs_teacher_features:
            # on whole slices (a patch view has .full); patches crop it as they crop the slices
            self.cache = self.teacher_outputs(getattr(train_ds, "full", train_ds))
        elif self.teacher is not None and self.cfg.teacher_cache and self.feature_loss is not None:
            self.feature_cache = teacher_cache.teacher_targets(self, train_ds, TEACHER_CACHE_LIMIT)

    def close(self) -> None:
        """Remove the forward hooks (the networks are left as they were given)."""
        for recorder in self.recorders.values():
            recorder.detach()
        self.recorders = {}

    def build_feature_loss(self, model: nn.Module, train_ds: Dataset) -> nn.Module:
        """The configured feature loss, wired by its own ``from_config`` from one probe pass
        (every layer's output shape); pairs: ``feature_pairs`` or the networks' defaults."""
        batch = to_device(next(iter(DataLoader(train_ds, batch_size=1))), self.device)
        with torch.no_grad(), record_all(model) as s, record_all(self.teacher) as t:
            self.task.forward(model, batch, False)
            self.task.forward(self.teacher, batch, False)
        defaults = self.cfg.feature_pairs or default_feature_pairs(model, self.teacher)
        return feature_loss_from_config(self.cfg, defaults, feature_probe(s, t)).to(self.device)

    @torch.no_grad()
    def teacher_outputs(self, ds: Dataset) -> torch.Tensor | None:
        """The frozen teacher's output for every training slice, computed once (there is no
        data augmentation, so it never changes) exactly as the step would compute it: the
        step's batches (``strategy.batches``) and batch size, under its autocast; ``None`` if
        it would exceed the limit."""
        first = ds[0]["target"]
        if len(ds) * first.numel() * 4 > TEACHER_CACHE_LIMIT:
            return None
        out = None
        # each process computes its share of the slices; the sum over processes fills them all
        size = self.strategy.per_rank_batch(self.cfg.batch_size)
        loader = DataLoader(self.strategy.shard(ds), batch_size=size, shuffle=False)
        for batch in progress_bar(self.strategy.batches(loader), total=len(loader), desc="teacher outputs",
                                  leave=False, enabled=self.cfg.progress and self.strategy.progress()):
            with self.strategy.autocast():
                image = self.task.forward(self.teacher, batch, False).image
            if out is None:
                out = torch.zeros((len(ds), *image.shape[1:]), dtype=image.dtype)
            out[batch["index"].cpu()] = image.cpu()
        return self.strategy.all_reduce_sum_(out)

    # ---- losses
    def _teacher_fn(self, batch: dict, cached: bool = True):
        """The teacher's part of ``batch``: from a cache on training batches (``cached``),
        else a forward pass of the frozen teacher."""
        if self.teacher is None:
            return None
        needs_features = self.objective.needs_teacher_features

        def run(features: bool = False):
            if cached and self.feature_cache is not None:
                return teacher_cache.lookup(self.feature_cache, batch["index"], self.device)
            if cached and self.cache is not None and not needs_features:
                image = self.cache[batch["index"].cpu()]
                if "crop" in batch:  # a random patch: the same window of the whole-slice output
                    image = crop_like(image, batch["crop"].cpu(), batch["target"].shape[-1])
                return image.to(self.device)
            with torch.no_grad():
                return self._run("teacher", self.teacher, batch, features or needs_features)

        return run

    def _objective(self, model: nn.Module, batch: dict, cached: bool = False):
        out = self.forward(model, batch, features="feature" in self.objective.names)
        ctx = TermContext(self.cfg, batch, out, self._teacher_fn(batch, cached), self.feature_loss)
        return out, *self.objective(ctx)

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        """The stage's objective on one training batch: ``(total, logs)``."""
        with self.strategy.autocast():
            return self._objective(model, batch, cached=True)[1:]

    @torch.no_grad()
    def validate(self, model: nn.Module, batch: dict) -> tuple[float, float]:
        """``(validation loss, sum of per-slice PSNRs)`` of one batch, from one forward pass:
        the loss the stage selects on, and the PSNR of its predictions (data range = each
        target slice's maximum, as :func:`kdmri.metrics.psnr`) for the learning curves."""
        with self.strategy.autocast():
            if self.spec.validate == "objective":
                out, total, _ = self._objective(model, batch)
                loss = total.item()
            else:
                out = self.task.forward(model, batch, False)
                loss = F.l1_loss(out.image.float(), batch["target"]).item()
        if not isinstance(out, ReconOutput):  # (ReconOutput, branches): an SFT training pass
            out = out[0]
        pred = out.image.float().cpu().numpy()
        target = batch["target"].float().cpu().numpy()
        return loss, sum(min(psnr(t, p), PSNR_CAP) for t, p in zip(target, pred))

    def val_loss(self, model: nn.Module, batch: dict) -> float:
        return self.validate(model, batch)[0]

    def step(self, model: nn.Module, batch: dict,
             optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, dict]:
        """One optimisation step on ``batch`` (already on the device)."""
        loss, logs = self.loss(model, batch)
        if not torch.isfinite(loss):
            raise DataError(f"stage {self.spec.name}: loss became {loss.item()} "
                            f"(volume {batch['volume'][0]}, slice {int(batch['slice'][0])})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.strategy.average_gradients(self.extra)  # loss modules are not inside the DDP wrapper
        optimizer.step()
        return loss, logs


# ---------------------------------------------------------------- callbacks


class CheckpointWriter(Callback):
    """``best_model.pt`` when the validation loss improves, ``model.pt`` every epoch."""

    def __init__(self, out_dir: Path, meta: dict):
        self.out_dir, self.meta = out_dir, meta

    def on_epoch_end(self, state: dict) -> None:
        model, row = state["model"], state["row"]
        meta = {"arch": arch_of(model), **self.meta}
        if state["improved"]:
            atomic_save({"model": model.state_dict(), "epoch": row["epoch"],
                         "val_loss": row["val_loss"], **meta}, self.out_dir / BEST)
        atomic_save({"model": model.state_dict(), "extra": state["extra"].state_dict(),
                     "optimizer": state["optimizer"].state_dict(),
                     "scheduler": state["scheduler"].state_dict(), "epoch": row["epoch"],
                     "history": state["history"], "best": state["best"], **meta},
                    self.out_dir / LAST)


class CSVLog(Callback):
    """``train_log.csv``: one row per epoch, rewritten atomically."""

    def __init__(self, path: Path):
        self.path = path

    def on_epoch_end(self, state: dict) -> None:
        write_csv(self.path, state["history"])


class ProgressBar(Callback):
    """A bar per stage, updated each epoch (:func:`kdmri.progress.progress_bar`: live, or one
    line per epoch in the job log of a batch-executed notebook) and, when enabled, one
    summary line at the end of the stage."""

    def __init__(self, desc: str, start: int, total: int, enabled: bool):
        self.desc, self.start, self.enabled = desc, start, enabled
        self.t0 = time.perf_counter()
        self.bar = progress_bar(desc=desc, initial=start, total=total, enabled=enabled, leave=False,
                                per_update=True, unit="epoch")

    def on_epoch_end(self, state: dict) -> None:
        row = state["row"]
        self.bar.set_postfix(train=f"{row['train_loss']:.4g}", val=f"{row['val_loss']:.4g}", refresh=False)
        self.bar.update(1)  # one refresh (one line in a job log) per epoch

    def on_end(self, state: dict) -> None:
        self.bar.close()
        if self.enabled and state["epoch"] > self.start:
            best = state["best"]
            print(f"{self.desc}: epochs {self.start + 1}-{state['epoch']} in "
                  f"{time.perf_counter() - self.t0:.0f} s, best val_loss {best['val_loss']:.4g} "
                  f"(epoch {best['epoch']})", flush=True)


# ---------------------------------------------------------------- the loop


def fit(runner: StageRunner, model: nn.Module, train_ds: Dataset, val_ds: Dataset,
        optimizer: torch.optim.Optimizer, scheduler, state: dict, end: int,
        callbacks: list[Callback]) -> dict:
    """Train epochs ``state["epoch"] .. end - 1``; ``state`` holds history and best record."""
    cfg, strategy = runner.cfg, runner.strategy
    net = strategy.prepare_model(model)
    for epoch in range(state["epoch"], end):
        t0 = time.perf_counter()
        net.train()
        sums: dict[str, float] = {}
        n = 0
        if hasattr(train_ds, "set_epoch"):  # random patches: this epoch's (kdmri.data.views)
            train_ds.set_epoch(epoch)
        loader = strategy.train_loader(train_ds, cfg.batch_size, cfg.seed, epoch, cfg.num_workers)
        for batch in strategy.batches(loader):
            loss, logs = runner.step(net, batch, optimizer)
            bs = batch["target"].shape[0]
            n += bs
            for k, v in {"loss": loss.item(), **logs}.items():
                sums[k] = sums.get(k, 0.0) + v * bs
        scheduler.step()
        net.eval()
        eval_net = strategy.eval_model(net)
        val, val_psnr, nv = 0.0, 0.0, 0
        for batch in strategy.batches(strategy.eval_loader(val_ds, cfg.batch_size)):  # this rank's share
            bs = batch["target"].shape[0]
            loss_b, psnr_b = runner.validate(eval_net, batch)
            val += loss_b * bs
            val_psnr += psnr_b
            nv += bs
        keys = list(sums)  # "loss" first, then the objective's terms in order
        totals = strategy.reduce_sum([sums[k] for k in keys] + [n, val, val_psnr, nv])
        sums = dict(zip(keys, totals[:len(keys)]))
        n, val, val_psnr, nv = totals[-4:]
        row = {"epoch": epoch + 1, **{f"train_{k}": sums[k] / n for k in keys},
               "val_loss": val / nv, "val_psnr": val_psnr / nv, "lr": optimizer.param_groups[0]["lr"],
               "seconds": round(time.perf_counter() - t0, 3)}
        state["history"].append(row)
        improved = row["val_loss"] < state["best"]["val_loss"]
        if improved:
            state["best"] = {"val_loss": row["val_loss"], "epoch": epoch + 1}
        state.update(epoch=epoch + 1, row=row, improved=improved)
        if strategy.is_writer:
            for cb in callbacks:
                cb.on_epoch_end(state)
        strategy.barrier()
    for cb in callbacks:
        cb.on_end(state)
    return state


def optimiser(runner: StageRunner, model: nn.Module):
    """Adam on the network and the loss modules, StepLR (every stage's schedule)."""
    cfg = runner.cfg
    optimizer = torch.optim.Adam(list(model.parameters()) + list(runner.extra.parameters()), lr=cfg.lr)
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)


def train(cfg: Config, stage: str, stop_after: int | None = None,
          strategy: Strategy | None = None, reuse: bool = True) -> Path:
    """Train ``stage`` with ``cfg``; returns the experiment folder.

    Resumes from ``model.pt`` when present (``cfg.resume``). Otherwise, with ``reuse``, a
    finished stage with the same content key (:mod:`kdmri.training.identity`) is copied
    instead of training again. ``stop_after`` ends the run after that many epochs in total,
    as if it had been killed (tests use it; it never reuses).

    A single process holds ``<experiment>/.lock`` (:func:`kdmri.locks.folder_lock`) for the
    whole stage, so a second process training the same stage waits, then returns at once
    from the finished ``model.pt``. Under DDP (``world_size > 1``) no lock is taken -- the
    ranks of one job would wait for each other -- and the batch plan must not run one
    stage in two jobs at once.
    """
    spec = get_stage(stage)
    strategy = strategy or default_strategy(cfg)
    runner = StageRunner(spec, cfg, strategy)
    with folder_lock(runner.experiment, f"training {stage}", enabled=strategy.world_size <= 1):
        return _train(runner, stage, stop_after, reuse)


def _train(runner: StageRunner, stage: str, stop_after: int | None, reuse: bool) -> Path:
    spec, strategy = runner.spec, runner.strategy
    cfg = runner.cfg
    device = strategy.device
    seed_everything(cfg.seed)
    out_dir = runner.experiment
    if strategy.is_writer:
        out_dir.mkdir(parents=True, exist_ok=True)
    last_path = out_dir / LAST
    resume = cfg.resume and last_path.is_file()
    if resume:  # a finished stage returns before any set-up work (no data read, no model built)
        done = load_checkpoint(last_path, device)
        check_resumable(done["config"], cfg, last_path, set(identity.stage_fields(cfg, spec)))
        if done["epoch"] >= cfg.epochs:
            if strategy.is_writer and done["epoch"] == cfg.epochs == done["config"]["epochs"]:
                identity.record_if_missing(out_dir, cfg, spec)
            return out_dir
    elif reuse and stop_after is None and identity.reuse_identical(cfg, spec, out_dir, strategy.is_writer):
        strategy.barrier()
        return out_dir
    # reading the data draws no random numbers, so the model's seeded initialisation is as before
    train_ds, val_ds = runner.task.dataset(cfg, "train"), runner.task.dataset(cfg, "validation")
    model = runner.build_model().to(device)
    runner.setup(model, train_ds)
    optimizer, scheduler = optimiser(runner, model)
    if strategy.is_writer:
        save_config(cfg, out_dir / "config.yaml")
    state = {"epoch": 0, "history": [], "best": {"val_loss": math.inf, "epoch": -1},
             "model": model, "extra": runner.extra, "optimizer": optimizer, "scheduler": scheduler}
    if resume:
        ckpt = load_checkpoint(last_path, device)
        model.load_state_dict(ckpt["model"])
        runner.extra.load_state_dict(ckpt["extra"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        state.update(epoch=ckpt["epoch"], history=ckpt["history"], best=ckpt["best"])
    end = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    meta = {"config": cfg.to_dict(), "stage": stage, "role": spec.role, "task": runner.task.name,
            "precision_used": strategy.precision}  # precision: auto resolved on this machine
    callbacks = [CheckpointWriter(out_dir, meta), CSVLog(out_dir / "train_log.csv"),
                 ProgressBar(f"{stage} {cfg.dataset} {cfg.acc}", state["epoch"], cfg.epochs,
                             cfg.progress and strategy.progress())]
    if strategy.is_writer:  # tensorboard, the configured callbacks (kdmri.training.callbacks)
        callbacks += config_callbacks(cfg, Run(out_dir, runner, val_ds, state["epoch"]))
    try:
        fit(runner, model, train_ds, val_ds, optimizer, scheduler, state, end, callbacks)
    finally:
        runner.close()
    if strategy.is_writer and state["epoch"] >= cfg.epochs:
        identity.record(out_dir, identity.content_key(cfg, spec), stage, cfg.epochs)
    return out_dir
