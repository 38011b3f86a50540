"""What notebook 09 ("distil your own network") calls: a fastMRI-form U-Net teacher, its
layers by module path, the pairs distilled into kdmri's DC-CNN student, and their cost.

The teacher is an ordinary ``teacher`` stage with ``teacher_model: unet`` (experiment method
:data:`METHOD`, so ``experiments/<dataset>/acc_<acc>/unet_teacher/``), or any checkpoint named
by ``teacher_checkpoint`` (a file or ``pretrained:NAME``). The student is distilled with
:func:`kdmri.distil` into ``unet_student/`` and evaluated there like a trained stage.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch
from torch import nn

from kdmri.checkpoint import BEST, load_model, load_network
from kdmri.config import Config
from kdmri.models.blocks import count_parameters
from kdmri.models.features import record_all
from kdmri.models.tasks import RECON, task_of
from kdmri.pretrained import resolve_checkpoint
from kdmri.reporting.latency import inference_latency
from kdmri.reporting.reports import collect_reports, results_table
from kdmri.training.engine import train
from kdmri.training.strategy import to_device

#: Experiment method of the notebook's runs: ``unet_teacher/``, ``unet_student/``.
METHOD = "unet"
#: A small fastMRI-form U-Net (fastMRI's baseline: chans 32, 4 pools) with data consistency.
UNET_TEACHER = {"chans": 16, "num_pool_layers": 3, "dc": True}
#: (student layer, teacher layer) by module path: the DC-CNN student's second activation of
#: cascades 1, 3 and 5 against the U-Net's first encoder block (full size), its third
#: (a quarter of the size: the attention map is interpolated) and its last decoder block.
PAIRS = (("cascades.0.acts.1", "down_sample_layers.0"),
         ("cascades.2.acts.1", "down_sample_layers.2"),
         ("cascades.4.acts.1", "up_conv.2.0"))


def unet_config(cfg: Config) -> Config:
    """``cfg`` with the U-Net as the teacher stage's network, under :data:`METHOD`."""
    return cfg.replace(method=METHOD, teacher_model="unet", teacher_model_options=dict(UNET_TEACHER))


def unet_teacher(cfg: Config) -> nn.Module:
    """The teacher in eval mode: ``teacher_checkpoint`` when set (a file or ``pretrained:NAME``,
    network ``teacher_model`` or the checkpoint's own), else the ``teacher`` stage of
    :func:`unet_config` trained (at once when it is finished already)."""
    if cfg.teacher_checkpoint:
        model, _ = load_network(resolve_checkpoint(cfg.teacher_checkpoint), cfg.teacher_model,
                                cfg.teacher_model_options, cfg.torch_device())
    else:
        train(cfg, "teacher")
        model, _ = load_model(cfg.experiment("teacher") / BEST, cfg.torch_device())
    return model.eval()


def distil_data(cfg: Config):
    """``(train, validation)`` slice datasets of ``cfg`` (``max_*_slices`` applied)."""
    return RECON.dataset(cfg, "train"), RECON.dataset(cfg, "validation")


def _shape(value) -> str:
    return "x".join(str(s) for s in value.shape[1:]) if isinstance(value, torch.Tensor) else "-"


@torch.no_grad()
def layer_table(model: nn.Module, batch: Mapping, depth: int = 2, under: str = "") -> str:
    """The module tree of ``model`` to ``depth`` levels (of the paths starting with ``under``):
    module path, class and output shape (channels x H x W; ``-`` for a container that is
    never called) on ``batch``, from one pass with every module hooked. A path of this table
    is what ``feature_pairs`` / ``pairs=`` name."""
    device = next(model.parameters()).device
    with record_all(model) as outputs:
        task_of(model).forward(model.eval(), to_device(dict(batch), device), False)
    rows = [(path, type(module).__name__, _shape(outputs.get(path)))
            for path, module in model.named_modules()
            if path and path.count(".") < depth and path.startswith(under)]
    width = max(len(p) for p, _, _ in rows)
    return "\n".join(f"{p:<{width}}  {kind:<16} {shape}" for p, kind, shape in rows)


def results(cfg: Config):
    """The results table (:func:`kdmri.reporting.reports.results_table`) of the U-Net teacher,
    the distilled student and the student trained alone (``cfg.method``'s ``student``)."""
    reports = collect_reports(cfg.experiments_path / cfg.dataset / f"acc_{cfg.acc}")
    return results_table(reports, [(METHOD, "teacher"), (METHOD, "student"), (cfg.method, "student")])


def efficiency(models: Mapping[str, nn.Module], size: tuple[int, int], runs: int = 10,
               device: str = "cpu") -> pd.DataFrame:
    """Parameters and batch-1 inference latency (fastest of ``runs``,
    :func:`kdmri.reporting.latency.inference_latency`) of ``{name: model}`` at ``size``."""
    rows = {name: {"parameters": count_parameters(m, trainable_only=False),
                   "latency_ms": 1e3 * inference_latency(m, size, device, runs)}
            for name, m in models.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    first = table["latency_ms"].iloc[0]
    table["speed-up"] = (first / table["latency_ms"]).round(2)
    table["latency_ms"] = table["latency_ms"].round(2)
    return table
