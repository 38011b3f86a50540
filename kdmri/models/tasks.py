"""The two problems, as registered tasks: what differs between reconstruction and
super-resolution is an object, not an if/else.

A :class:`Task` knows its forward operator (:mod:`kdmri.physics.operators`), its slice
dataset, its network family (teacher / student presets) and how to call a network on a
batch. Stages name their task (:mod:`kdmri.training.stages`); evaluation and the
tutorial helpers use the same objects.

=========  =====================================  =======================  =========
task       operator                                networks                 baseline
=========  =====================================  =======================  =========
``recon``  Cartesian undersampling (line mask)    DC-CNN teacher/student   ``ZF``
``sr``     k-space truncation (``sr_keep``)       VDSR teacher/student     ``LR``
=========  =====================================  =======================  =========
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from torch import nn
from torch.utils.data import Dataset

from kdmri.data.sr import SRSliceDataset
from kdmri.data.sr_settings import sr_method
from kdmri.data.views import Indexed, RandomPatches
from kdmri.data.volumes import SliceDataset
from kdmri.errors import ConfigError, DataError
from kdmri.models.blocks import ReconOutput
from kdmri.models.dccnn import DCCNN, build_dccnn, preset
from kdmri.models.features import call_network, resolve_layer, unwrap
from kdmri.models.registry import build_network
from kdmri.models.sft import SFTTeacher
from kdmri.models.vdsr import VDSR, build_vdsr
from kdmri.physics.operators import CartesianUndersampling, KspaceTruncation
from kdmri.registry import Registry

#: The networks a configuration may name instead of a stage's preset: ``{arch: (field, options field)}``.
NETWORK_FIELDS = {"teacher": ("teacher_model", "teacher_model_options"),
                  "student": ("student_model", "student_model_options")}


@dataclass(frozen=True)
class Task:
    """Base of a task. Subclasses implement :meth:`base_dataset`, :meth:`build_preset` and
    :meth:`operator`, and name the network inputs a batch provides (:attr:`inputs`)."""

    #: Inputs a batch of this task gives a network (:data:`kdmri.models.features.INPUT_KEYS`).
    inputs: ClassVar[tuple[str, ...]] = ("image",)

    name: str
    default_method: str  # experiment method of its stages unless the config names another
    stage_prefix: str  # "" or "sr-": stage names of this task
    baseline_label: str  # "ZF" / "LR": the network-free baseline in tables
    baseline_role: str  # experiment role of that baseline ("zf" / "lr")

    def base_dataset(self, cfg, folder) -> Dataset:
        raise NotImplementedError

    def method_for(self, cfg) -> str:
        """The experiment method of this task's stages when the config keeps the generic one."""
        return self.default_method

    def dataset(self, cfg, split: str) -> Dataset:
        """The ``train`` or ``validation`` view of ``cfg``'s data (``max_*_slices`` applied),
        or a named test set: the folder ``<data path>/<split>`` (e.g. ``shift``, the demo's
        domain-shift set), read like the validation slices (``max_val_slices`` applied)."""
        if split == "train":
            return Indexed(self.base_dataset(cfg, cfg.train_dir), cfg.max_train_slices)
        if split != "validation" and (not split or not split.replace("-", "").replace("_", "").isalnum()):
            raise ConfigError(f"split={split!r}: expected 'train', 'validation' or the name of a test "
                              f"set folder under {cfg.data_path}")
        folder = cfg.val_dir if split == "validation" else cfg.data_path / split
        return Indexed(self.base_dataset(cfg, folder), cfg.max_val_slices)

    def build(self, arch: str, cfg=None) -> nn.Module:
        """The network ``arch`` (``teacher``/``student``/...): the one ``cfg`` names
        (``teacher_model`` / ``student_model``: a registered kind or an import path, with
        its ``*_options``) or else the task's preset, with ``cfg``'s architecture settings
        (``residual``) when given."""
        field, options = NETWORK_FIELDS.get(arch, (None, None))
        spec = getattr(cfg, field, None) if field else None
        if spec is not None:
            return build_network(spec, getattr(cfg, options), field)
        return self.build_preset(arch, cfg)

    def build_preset(self, arch: str, cfg=None) -> nn.Module:
        raise NotImplementedError

    def forward(self, model: nn.Module, batch: dict, features: bool = True) -> ReconOutput:
        """``model`` on ``batch``: the inputs it takes (:func:`~kdmri.models.features.network_inputs`)
        of this task's, its output as a ReconOutput."""
        return call_network(model, batch, self.inputs, self.name, features)

    def default_pairs(self) -> list:
        return self.build("student").default_feature_pairs()

    def operator(self, cfg, shape: tuple[int, int], mask=None) -> nn.Module:
        raise NotImplementedError


class ReconTask(Task):
    """Reconstruction from undersampled k-space with the DC-CNN."""

    def base_dataset(self, cfg, folder) -> Dataset:
        return SliceDataset(folder, cfg.acc, mask=cfg.mask, in_memory=cfg.in_memory)

    inputs = ("image", "kspace", "mask")

    def build_preset(self, arch: str, cfg=None) -> nn.Module:
        residual = None if cfg is None else cfg.residual
        if arch == "sft":
            return SFTTeacher(preset("teacher", residual), preset("student", residual))
        return build_dccnn(arch, residual)

    def default_pairs(self) -> list:
        return DCCNN.default_feature_pairs()

    def operator(self, cfg, shape, mask=None):
        if mask is None:
            raise ConfigError("the reconstruction operator needs a mask (H, W)")
        return CartesianUndersampling(mask)


class SRTask(Task):
    """Super-resolution of a k-space-truncated image with VDSR (the KD-MRI extension)."""

    def base_dataset(self, cfg, folder) -> Dataset:
        return SRSliceDataset(folder, keep=cfg.sr_keep, in_memory=cfg.in_memory)

    def dataset(self, cfg, split: str) -> Dataset:
        """As :meth:`Task.dataset`; with ``sr_patch`` the training view yields one random
        patch per slice and epoch (:class:`~kdmri.data.views.RandomPatches`)."""
        ds = super().dataset(cfg, split)
        if split == "train" and cfg.sr_patch:
            try:
                return RandomPatches(ds, cfg.sr_patch, cfg.seed)
            except ValueError as exc:
                raise ConfigError(f"{cfg.train_dir}: {exc}") from None
        return ds

    def method_for(self, cfg) -> str:
        """``sr-keep<N>``: the setting is in the folder name, so two settings never share one."""
        return sr_method(cfg.sr_keep)

    def build_preset(self, arch: str, cfg=None) -> nn.Module:
        return build_vdsr(arch)  # VDSR's global residual is part of VDSR (cfg.residual is the DC-CNN's)

    def default_pairs(self) -> list:
        return VDSR.default_feature_pairs()

    def operator(self, cfg, shape, mask=None):
        return KspaceTruncation(shape, cfg.sr_keep)


TASKS: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    return TASKS.add(task.name, task)


def get_task(name: str) -> Task:
    return TASKS.lookup(name)


RECON = register_task(ReconTask("recon", "kdmri", "", "ZF", "zf"))
SR = register_task(SRTask("sr", "sr", "sr-", "LR", "lr"))


def task_of(model: nn.Module, ckpt: Mapping | None = None) -> Task:
    """The task a (checkpointed) network solves: the checkpoint's ``task`` entry, else the
    network's own ``task`` attribute, else the task of the checkpoint's stage name."""
    ckpt = ckpt or {}
    name = ckpt.get("task") or getattr(unwrap(model), "task", None)
    if name is None and isinstance(ckpt.get("stage"), str):
        prefixed = [t for t in TASKS.values() if t.stage_prefix and ckpt["stage"].startswith(t.stage_prefix)]
        name = (prefixed or [RECON])[0].name
    if name not in TASKS:
        raise DataError(f"cannot tell which task {type(unwrap(model)).__name__} solves (task {name!r}); "
                        f"expected a checkpoint with 'task' in {sorted(TASKS)} or a network with a "
                        "task attribute")
    return TASKS[name]


def default_feature_pairs(student: nn.Module, teacher: nn.Module) -> list:
    """The student's own default layer pairs (``default_feature_pairs()``) when both networks
    have those layers (KD-MRI's pairs between two DC-CNNs, VDSR's between two VDSRs);
    else a ConfigError asking for ``feature_pairs``."""
    own = getattr(unwrap(student), "default_feature_pairs", None)
    pairs = own() if callable(own) else None
    if pairs:
        try:
            for s_name, t_name in pairs:
                resolve_layer(student, s_name, "student")
                resolve_layer(teacher, t_name, "teacher")
            return pairs
        except ConfigError:
            pass
    raise ConfigError(f"feature_pairs: no default layer pairs between a {type(unwrap(student)).__name__} "
                      f"student and a {type(unwrap(teacher)).__name__} teacher; set feature_pairs: "
                      "[[student_module_path, teacher_module_path], ...]")
