"""One training loop for every stage; stages plug in their loss.

Stages (``python -m kdmri train --stage <stage>``):

================  ========  ==================================================================
stage             network   loss
================  ========  ==================================================================
``teacher``       teacher   L1(out, target)
``student``       student   L1(out, target)
``feature``       student   feature_weight * FeatureLoss(student feats, frozen teacher feats)
                            (+ feature_target_weight * L1(out, target)); KD-MRI attention
                            transfer by default: teacher conv3 <-> student conv2 per cascade
``kd``            student   L1(out, target) + imitation_weight * L1(out, teacher out),
                            initialised from the ``feature`` stage (``kd_init``)
``sr-*``          VDSR      the same four stages for super-resolution (:mod:`kdmri.data.sr`)
``sft-teacher``   SFT       SFT-KD-Recon student-friendly teacher (:mod:`kdmri.training.sft`)
``sft-feature``   student   feature stage from the SFT teacher, cascades 2..5 initialised from it
``sft-kd``        student   KD from the SFT teacher, initialised from ``sft-feature``
================  ========  ==================================================================

Every stage: Adam + StepLR, model selection on the validation loss (L1 to the target, or
the feature loss in the ``feature`` stage), ``model.pt`` (resumable) and ``best_model.pt``
written atomically every epoch, ``train_log.csv`` rewritten every epoch, the resolved
``config.yaml`` beside them, a tqdm progress bar. Shuffling is seeded per epoch from
``seed`` so a run resumed after epoch k ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm.auto import tqdm

from kdmri.checkpoint import BEST, LAST, arch_of, atomic_save, load_checkpoint, load_model
from kdmri.config import Config, check_resumable, save_config, seed_everything
from kdmri.errors import ConfigError, DataError
from kdmri.io import write_csv
from kdmri.models.dccnn import ReconOutput

# ---------------------------------------------------------------- tasks: recon and SR


@dataclass(frozen=True)
class Task:
    """What differs between reconstruction and super-resolution."""

    name: str  # "recon" | "sr"
    method: str  # default experiment prefix

    def build(self, arch: str) -> nn.Module:
        if self.name == "recon":
            from kdmri.models.dccnn import build_dccnn

            return build_dccnn(arch)
        from kdmri.models.vdsr import build_vdsr

        return build_vdsr(arch)

    def forward(self, model: nn.Module, batch: dict, features: bool = True) -> ReconOutput:
        if self.name == "recon":
            return model(batch["input"], batch["kspace"], batch["mask"], return_features=features)
        return model(batch["input"], return_features=features)

    def dataset(self, cfg: Config, split: str) -> Dataset:
        folder = cfg.train_dir if split == "train" else cfg.val_dir
        if self.name == "recon":
            from kdmri.data import SliceDataset

            ds = SliceDataset(folder, cfg.acc, mask=cfg.mask, in_memory=cfg.in_memory)
        else:
            from kdmri.data.sr import SRSliceDataset

            ds = SRSliceDataset(folder, keep=cfg.sr_keep, in_memory=cfg.in_memory)
        limit = cfg.max_train_slices if split == "train" else cfg.max_val_slices
        return Indexed(ds, limit)

    def default_pairs(self) -> list[tuple[str, str]]:
        if self.name == "recon":
            from kdmri.distill.losses import default_pairs

            return default_pairs()
        from kdmri.models.vdsr import VDSR_DEFAULT_PAIRS

        return list(VDSR_DEFAULT_PAIRS)

    @property
    def baseline_name(self) -> str:
        return "ZF" if self.name == "recon" else "LR"


RECON = Task("recon", "kdmri")
SR = Task("sr", "sr")


class Indexed(Dataset):
    """A dataset view adding ``item["index"]`` (position in the view), optionally limited to
    ``limit`` slices spread evenly over the dataset (for small CI runs)."""

    def __init__(self, base: Dataset, limit: int | None = None):
        self.base = base
        n = len(base)
        if limit is not None and limit < n:
            self.indices = np.unique(np.linspace(0, n - 1, int(limit)).round().astype(int)).tolist()
        else:
            self.indices = list(range(n))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[self.indices[i]])
        item["index"] = i
        return item


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


# ---------------------------------------------------------------- stages


class Stage:
    """Base stage: supervised L1 to the target. Subclasses override :meth:`loss`."""

    arch = "teacher"
    role = "teacher"
    needs_teacher = False

    def __init__(self, cfg: Config, task: Task, device: torch.device):
        self.cfg, self.task, self.device = cfg, task, device
        self.extra = nn.ModuleList()  # trainable loss modules (e.g. FitNets regressors)

    @classmethod
    def configure(cls, cfg: Config) -> Config:
        """Settings the stage fixes (SFT stages: method "sft"); by default ``cfg`` unchanged."""
        return cfg

    def method(self) -> str:
        return self.cfg.method

    def experiment(self) -> Path:
        return self.cfg.experiment(self.role, self.method())

    def build_model(self) -> nn.Module:
        return self.task.build(self.arch)

    def setup(self, model: nn.Module, train_ds: Dataset) -> None:
        """Called once before training (load teachers, initialise weights)."""

    def forward(self, model, batch, features=False) -> ReconOutput:
        return self.task.forward(model, batch, features)

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        out = self.forward(model, batch)
        loss = F.l1_loss(out.image, batch["target"])
        return loss, {"l1": loss.item()}

    @torch.no_grad()
    def val_loss(self, model: nn.Module, batch: dict) -> float:
        return F.l1_loss(self.forward(model, batch).image, batch["target"]).item()


class TeacherStage(Stage):
    arch, role = "teacher", "teacher"


class StudentStage(Stage):
    arch, role = "student", "student"


class _WithTeacher(Stage):
    arch = "student"
    needs_teacher = True

    def teacher_path(self) -> Path:
        return self.cfg.experiment("teacher", self.cfg.teacher_method or self.cfg.method) / BEST

    def load_teacher(self) -> nn.Module:
        teacher, _ = load_model(self.teacher_path(), self.device)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    def build_feature_loss(self, model, train_ds, weight_name="feature") -> nn.Module:
        from kdmri.distill.losses import build_feature_loss

        cfg = self.cfg
        pairs = [tuple(p) for p in (cfg.feature_pairs or self.task.default_pairs())]
        options = dict(cfg.feature_options)
        if cfg.feature_loss == "at_kdmri":
            options.setdefault("mode", cfg.at_mode)
        if cfg.feature_loss == "fsp":
            from kdmri.distill.losses import default_fsp_pairs

            if not cfg.feature_pairs:
                pairs = default_fsp_pairs()
        if cfg.feature_loss == "fitnet":  # channel counts from one probe forward
            batch = to_device(next(iter(DataLoader(train_ds, batch_size=1))), self.device)
            with torch.no_grad():
                s = self.forward(model, batch, True).features
                t = self.forward(self.teacher, batch, True).features
            options.setdefault("student_channels", [s[a].shape[1] for a, _ in pairs])
            options.setdefault("teacher_channels", [t[b].shape[1] for _, b in pairs])
        try:
            loss = build_feature_loss(cfg.feature_loss, pairs, **options)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"feature_loss={cfg.feature_loss!r}: {exc}") from exc
        return loss.to(self.device)


class FeatureStage(_WithTeacher):
    """Feature distillation: the student's activations match the frozen teacher's.

    ``feature_init`` picks the student's starting point: ``scratch`` (KD-MRI), ``sft``
    (SFT-KD-Recon: cascades 2..5 from the SFT teacher's student branches) or a checkpoint.
    """

    role = "feature"

    def init_student(self, model) -> None:
        init = self.cfg.feature_init
        if init == "scratch":
            return
        if init == "sft":
            from kdmri.training.sft import init_student_from_sft

            init_student_from_sft(model, self.cfg.experiment("teacher", "sft") / BEST, self.device)
            return
        model.load_state_dict(load_checkpoint(init, self.device)["model"])

    def setup(self, model, train_ds):
        self.teacher = self.load_teacher()
        self.init_student(model)
        self.feature_loss = self.build_feature_loss(model, train_ds)
        self.extra.append(self.feature_loss)

    def _loss(self, model, batch):
        out = self.forward(model, batch, True)
        with torch.no_grad():
            t = self.forward(self.teacher, batch, True)
        feat = self.feature_loss(out.features, t.features)
        total = self.cfg.feature_weight * feat
        logs = {"feature": feat.item()}
        if self.cfg.feature_target_weight:
            l1 = F.l1_loss(out.image, batch["target"])
            total = total + self.cfg.feature_target_weight * l1
            logs["l1"] = l1.item()
        return total, logs

    def loss(self, model, batch):
        return self._loss(model, batch)

    @torch.no_grad()
    def val_loss(self, model, batch) -> float:
        return self._loss(model, batch)[0].item()


class KDStage(_WithTeacher):
    """KD-MRI stage 3: L1 to the target plus the imitation of the teacher's output."""

    role = "kd"

    def init_path(self) -> Path | None:
        init = self.cfg.kd_init
        if init == "scratch":
            return None
        if init == "feature":
            return self.cfg.experiment("feature", self.method()) / BEST
        return Path(init)

    def setup(self, model, train_ds):
        self.teacher = self.load_teacher()
        path = self.init_path()
        if path is not None:
            model.load_state_dict(load_checkpoint(path, self.device)["model"])
        self.cache = None
        if self.cfg.teacher_cache:
            self.cache = self.teacher_outputs(train_ds)
        self.feature_loss = None
        if self.cfg.kd_feature_weight:
            self.feature_loss = self.build_feature_loss(model, train_ds)
            self.extra.append(self.feature_loss)

    @torch.no_grad()
    def teacher_outputs(self, ds: Dataset) -> torch.Tensor | None:
        """The frozen teacher's output for every training slice, computed once (no data
        augmentation here, so it never changes); ``None`` if it would exceed 2 GB."""
        first = ds[0]["target"]
        if len(ds) * first.numel() * 4 > 2 * 1024**3:
            return None
        out = torch.empty((len(ds), *first.shape))
        loader = DataLoader(ds, batch_size=max(8, self.cfg.batch_size), shuffle=False)
        for batch in tqdm(loader, desc="teacher outputs", leave=False,
                          disable=not self.cfg.progress):
            b = to_device(batch, self.device)
            out[batch["index"]] = self.forward(self.teacher, b, False).image.cpu()
        return out

    def teacher_image(self, batch) -> torch.Tensor:
        if self.cache is not None and self.feature_loss is None:
            return self.cache[batch["index"].cpu()].to(self.device)
        with torch.no_grad():
            return self.forward(self.teacher, batch, False).image

    def loss(self, model, batch):
        from kdmri.distill.losses import imitation_loss

        want_feats = self.feature_loss is not None
        out = self.forward(model, batch, want_feats)
        l1 = F.l1_loss(out.image, batch["target"])
        if want_feats:
            with torch.no_grad():
                t = self.forward(self.teacher, batch, True)
            t_img = t.image
        else:
            t_img = self.teacher_image(batch)
        imit = imitation_loss(out.image, t_img, reduction=self.cfg.imitation_reduction)
        total = l1 + self.cfg.imitation_weight * imit
        logs = {"l1": l1.item(), "imitation": imit.item()}
        if want_feats:
            feat = self.feature_loss(out.features, t.features)
            total = total + self.cfg.kd_feature_weight * feat
            logs["feature"] = feat.item()
        return total, logs


STAGES: dict[str, type[Stage]] = {
    "teacher": TeacherStage,
    "student": StudentStage,
    "feature": FeatureStage,
    "kd": KDStage,
}


def resolve_stage(name: str) -> tuple[type[Stage], Task]:
    """``"kd"`` -> (KDStage, RECON); ``"sr-kd"`` -> (KDStage, SR); SFT stages from kdmri.training.sft."""
    if name.startswith("sft-"):
        from kdmri.training.sft import SFT_STAGES

        if name in SFT_STAGES:
            return SFT_STAGES[name], RECON
    task, base = (SR, name[3:]) if name.startswith("sr-") else (RECON, name)
    if base in STAGES:
        return STAGES[base], task
    known = sorted(STAGES) + [f"sr-{s}" for s in STAGES] + ["sft-teacher", "sft-feature", "sft-kd"]
    raise ConfigError(f"stage {name!r}: expected one of {known}")


def default_method(cfg: Config, task: Task) -> Config:
    """SR stages default to method 'sr' unless the config names another."""
    if task is SR and cfg.method == "kdmri":
        return cfg.replace(method="sr")
    return cfg


# ---------------------------------------------------------------- the loop


def _write_log(path: Path, history: list[dict]) -> None:
    write_csv(path, history)


def _epoch_loader(ds: Dataset, cfg: Config, epoch: int) -> DataLoader:
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    return DataLoader(ds, batch_size=cfg.batch_size, sampler=RandomSampler(ds, generator=gen),
                      num_workers=cfg.num_workers)


def train(cfg: Config, stage: str, stop_after: int | None = None) -> Path:
    """Train ``stage`` with ``cfg``; returns the experiment folder.

    Resumes from ``model.pt`` when present (``cfg.resume``). ``stop_after`` ends the run
    after that many epochs in total, as if it had been killed (tests use it).
    """
    stage_cls, task = resolve_stage(stage)
    cfg = stage_cls.configure(default_method(cfg, task))
    device = cfg.torch_device()
    seed_everything(cfg.seed)
    st = stage_cls(cfg, task, device)
    out_dir = st.experiment()
    out_dir.mkdir(parents=True, exist_ok=True)
    train_ds, val_ds = task.dataset(cfg, "train"), task.dataset(cfg, "validation")
    model = st.build_model().to(device)
    last_path = out_dir / LAST
    if cfg.resume and last_path.is_file():  # a finished stage returns before any set-up work
        done = load_checkpoint(last_path, device)
        check_resumable(done["config"], cfg, last_path)
        if done["epoch"] >= cfg.epochs:
            return out_dir
    st.setup(model, train_ds)
    params = list(model.parameters()) + list(st.extra.parameters())
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    save_config(cfg, out_dir / "config.yaml")

    start, history, best = 0, [], {"val_loss": math.inf, "epoch": -1}
    if cfg.resume and last_path.is_file():
        ckpt = load_checkpoint(last_path, device)
        check_resumable(ckpt["config"], cfg, last_path)
        model.load_state_dict(ckpt["model"])
        st.extra.load_state_dict(ckpt["extra"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start, history, best = ckpt["epoch"], ckpt["history"], ckpt["best"]
        if start >= cfg.epochs:
            return out_dir
    end = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    bar = tqdm(range(start, end), desc=f"{stage} {cfg.dataset} {cfg.acc}", initial=start,
               total=cfg.epochs, disable=not cfg.progress)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        sums: dict[str, float] = {}
        n = 0
        for batch in _epoch_loader(train_ds, cfg, epoch):
            batch = to_device(batch, device)
            loss, logs = st.loss(model, batch)
            if not torch.isfinite(loss):
                raise DataError(f"stage {stage}, epoch {epoch + 1}: loss became {loss.item()} "
                                f"(volume {batch['volume'][0]}, slice {int(batch['slice'][0])})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bs = batch["target"].shape[0]
            n += bs
            for k, v in {"loss": loss.item(), **logs}.items():
                sums[k] = sums.get(k, 0.0) + v * bs
        scheduler.step()
        model.eval()
        val, nv = 0.0, 0
        for batch in DataLoader(val_ds, batch_size=cfg.batch_size, shuffle=False):
            batch = to_device(batch, device)
            bs = batch["target"].shape[0]
            val += st.val_loss(model, batch) * bs
            nv += bs
        row = {"epoch": epoch + 1, **{f"train_{k}": v / n for k, v in sums.items()},
               "val_loss": val / nv, "lr": optimizer.param_groups[0]["lr"],
               "seconds": round(time.perf_counter() - t0, 3)}
        history.append(row)
        meta = {"arch": arch_of(model), "config": cfg.to_dict(), "stage": stage, "role": st.role}
        if row["val_loss"] < best["val_loss"]:
            best = {"val_loss": row["val_loss"], "epoch": epoch + 1}
            atomic_save({"model": model.state_dict(), "epoch": epoch + 1,
                         "val_loss": row["val_loss"], **meta}, out_dir / BEST)
        atomic_save({"model": model.state_dict(), "extra": st.extra.state_dict(),
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "epoch": epoch + 1, "history": history, "best": best, **meta}, last_path)
        _write_log(out_dir / "train_log.csv", history)
        bar.set_postfix(train=f"{row['train_loss']:.4g}", val=f"{row['val_loss']:.4g}")
    bar.close()
    return out_dir


def register_cli(sub) -> None:
    from kdmri.tools.cli import add_config_arguments, config_from_args

    p = sub.add_parser("train", help="train one stage (teacher, student, feature, kd, sr-*, sft-*)")
    p.add_argument("--stage", required=True, help="teacher | student | feature | kd | sr-teacher | "
                   "sr-student | sr-feature | sr-kd | sft-teacher | sft-feature | sft-kd")
    add_config_arguments(p)

    def run(args):
        out = train(config_from_args(args), args.stage)
        print(f"trained {args.stage}: {out}")
        return 0

    p.set_defaults(func=run)
