"""Where super-resolution runs: the papers' settings, the SR stages' experiment method and
configuration.

KD-MRI ran super-resolution on Calgary-Campinas keeping the central 64 x 64 block of
256 x 256 k-space; the demo keeps the same fraction (24 of 96). Each dataset states its own
setting (``sr_keep`` of its :class:`~kdmri.datasets.registry.DatasetSpec`); only these
``(dataset, sr_keep)`` pairs train the SR stages (notebook 06), and a params file may set
``sr_keep`` only to one of them (:func:`check_sr_setting`, run by
:func:`kdmri.config.load_config` once this module is imported: it registers the check in
:data:`kdmri.config.PARAMS_CHECKS`).
"""

from __future__ import annotations

from typing import Any

from kdmri.config import PARAMS_CHECKS, Config
from kdmri.datasets.registry import sr_settings
from kdmri.errors import ConfigError

#: Super-resolution reads only the fully sampled images, so it runs once per dataset: with
#: the params file of this acceleration (the others would train identical networks).
SR_ACC = "4x"


def sr_enabled(cfg: Config) -> bool:
    """Whether ``cfg`` is a super-resolution setting a paper (or the demo) ran, at :data:`SR_ACC`."""
    return sr_settings().get(cfg.dataset) == cfg.sr_keep and cfg.acc == SR_ACC


def sr_status(cfg: Config) -> str:
    """One line: whether notebook 06 trains for ``cfg``, and where SR runs otherwise."""
    if sr_enabled(cfg):
        return f"super-resolution: {cfg.dataset} with sr_keep {cfg.sr_keep} (method {sr_method(cfg.sr_keep)})"
    settings = sr_settings()
    where = ", ".join(f"{d} with sr_keep {k}" for d, k in settings.items())
    files = ", ".join(f"params/{d}_{SR_ACC}.yaml" for d in settings)
    return (f"super-resolution is not run for {cfg.dataset} {cfg.acc} with sr_keep {cfg.sr_keep}: the "
            f"papers ran it only on {where}, once per dataset (it does not depend on the "
            f"acceleration): {files}")


def sr_method(keep: int) -> str:
    """Experiment method of the SR stages: the setting in the folder name (``sr-keep64``)."""
    return f"sr-keep{int(keep)}"


def sr_run_config(cfg: Config, epochs: int | None = None, max_train_slices: int | None = None,
                  batch_size: int | None = None) -> Config:
    """The configuration of the super-resolution stages (notebook 06, ``kdmri sr-select``):
    ``cfg`` under the SR method (:func:`sr_method`) with the SR knobs where given
    (``None``: ``cfg``'s value). The step schedule keeps its place in the run: ``lr_step``
    is scaled by ``epochs / cfg.epochs`` (a 15-of-20-epoch step becomes 30 of 40)."""
    epochs = int(epochs or cfg.epochs)
    lr_step = max(1, round(cfg.lr_step * epochs / cfg.epochs))
    return cfg.replace(method=sr_method(cfg.sr_keep), epochs=epochs, lr_step=lr_step,
                       max_train_slices=max_train_slices or cfg.max_train_slices,
                       batch_size=int(batch_size or cfg.batch_size))


@PARAMS_CHECKS.register("sr_keep")
def check_sr_setting(data: dict[str, Any], cfg: Config, source: str) -> None:
    """A params file that sets ``sr_keep`` (to other than the default) must name an SR
    experiment the papers made (resolved params files repeat the default everywhere)."""
    if data.get("sr_keep", Config.sr_keep) != Config.sr_keep and not sr_enabled(cfg):
        raise ConfigError(f"{source}: sr_keep={data['sr_keep']!r} for dataset {cfg.dataset!r} is not an "
                          f"experiment the papers made; {sr_status(cfg).split(': ', 1)[1]}")
