"""Small helpers the tutorial notebooks call (``from kdmri import tutorial as nb``).

Configuration (:func:`notebook_config`: Config defaults < the ``params_file`` YAML < the
notebook's parameters cell, ``None`` values deferring), data (:func:`ensure_data`,
:func:`validation_slice`), models (:func:`trained_model`, :func:`forward`,
:func:`attention_maps`, :func:`feature_loss_value`) and results (:func:`reconstructions`,
:func:`results_for`, :func:`slice_differences`, :func:`markdown`; the study's converged
models: :func:`kdmri.tools.converged.converged_results`, imported by the notebooks), each a
thin layer over the package.
The notebook files' conventions and tools are :mod:`kdmri.tools.notebooks` (docs/NOTEBOOKS.md).
"""

from __future__ import annotations

import platform
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kdmri.config import FIELDS, Config, load_config, notebook_parameters, read_params, resolve_params
from kdmri.data.sr_settings import sr_enabled, sr_method, sr_run_config, sr_status  # noqa: F401  (notebook 06)
from kdmri.errors import ConfigError, DataError
from kdmri.notebook_knobs import notebook_knobs  # noqa: F401  (what notebooks call)
from kdmri.paths import project_root
from kdmri.reporting.saving import save_figure, set_figures_dir  # noqa: F401

# Without ipywidgets tqdm.auto falls back to text bars; its warning about that is noise here.
warnings.filterwarnings("ignore", message="IProgress not found")

# =========================================================================== environment, config


def environment_report() -> str:
    """One line: versions of kdmri, torch, numpy, python; the compute device; the project root."""
    import torch

    import kdmri

    if torch.cuda.is_available():
        device = f"CUDA available ({torch.cuda.get_device_name(0)})"
    else:
        device = "CPU only (CUDA not available)"
    return (f"kdmri {kdmri.__version__} | torch {torch.__version__} | numpy {np.__version__} | "
            f"python {platform.python_version()} | {device} | project root: {project_root()}")


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_root()))
    except ValueError:
        return str(path)


def describe_config(cfg: Config) -> str:
    """A short summary of the settings a notebook runs with."""
    limits = ""
    if cfg.max_train_slices or cfg.max_val_slices:
        limits = (f" | at most {cfg.max_train_slices or 'all'} training / "
                  f"{cfg.max_val_slices or 'all'} validation slices")
    return (f"{cfg.dataset} {cfg.acc} | {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr:g} "
            f"(step {cfg.lr_step}, gamma {cfg.lr_gamma:g}), seed {cfg.seed}, device {cfg.device}{limits}"
            f"\ndata: {_display_path(cfg.data_path)} | experiments: {_display_path(cfg.experiments_path)}")


def notebook_config(params_file: str | Path | None = None, verbose: bool = True, **parameters) -> Config:
    """The :class:`Config` of a notebook run: Config defaults, then ``params_file`` (a YAML
    path or a name in params/), then the notebook's ``parameters`` (``None`` values defer).

    Every parameter must name a Config field (a typo raises :class:`ConfigError`, it is
    never dropped). When a parameter overrides a different value of the params file, a
    note says so: the parameters cell wins.
    """
    unknown = sorted(set(parameters) - FIELDS)
    if unknown:
        raise ConfigError(f"notebook parameters {unknown} are not Config fields; known: {sorted(FIELDS)}")
    cfg = load_config(params_file, parameters)
    if params_file is not None:  # batch runs: every figure also as PNG and PDF in the run folder
        set_figures_dir(notebook_parameters(params_file).get("figures_dir"))
    if verbose:
        if params_file is not None:
            from_file = read_params(params_file)
            base = load_config(params_file)
            changed = [f"{k}={getattr(base, k)!r} -> {getattr(cfg, k)!r}" for k in sorted(parameters)
                       if parameters[k] is not None and getattr(base, k) != getattr(cfg, k)]
            print(f"params file {_display_path(resolve_params(params_file))} ({len(from_file)} keys)")
            if changed:
                print("note: the parameters cell overrides the params file: " + ", ".join(changed))
        print(describe_config(cfg))
    return cfg


def require_sr(cfg: Config) -> None:
    """Stop a notebook (``ConfigError`` naming the setting) where the papers ran no
    super-resolution; :func:`kdmri.data.sr_settings.sr_status` says where they did."""
    if not sr_enabled(cfg):
        raise ConfigError(f"notebook 06 does not train here: {sr_status(cfg)}")


# =========================================================================== data


def ensure_data(cfg: Config) -> Path:
    """The dataset folder of ``cfg``; the demo dataset is built when missing (a few seconds,
    no download). Other datasets must have been converted (``python -m kdmri prepare``)."""
    if cfg.dataset == "demo" and not (cfg.train_dir.is_dir() and cfg.val_dir.is_dir()):
        if cfg.data_path.name != "demo":
            raise DataError(f"{cfg.data_path}: the demo dataset is built into a folder named 'demo'; "
                            "set data_root to <folder>/demo or leave it unset")
        from kdmri.data.demo import build_demo

        build_demo(cfg.data_path.parent, verbose=False)
    for folder in (cfg.train_dir, cfg.val_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: not found; convert the {cfg.dataset} dataset first "
                            f"(python -m kdmri prepare --help) or set data_root")
    return cfg.data_path


def load_masks(datasets: Iterable[str] | None = None, accs: Iterable[int | str] = (4, 5, 8)) -> dict:
    """The committed masks ``{(dataset, "4x"): mask (H, W)}`` from us_masks/; by default of
    every registered dataset the papers reconstruct (not the ``sr_only`` ones: Calgary)."""
    from kdmri.datasets.registry import DATASETS
    from kdmri.paths import acc_tag
    from kdmri.physics.masks import DATASET_SHAPES, load_dataset_mask

    names = list(datasets) if datasets is not None else [
        d for d in DATASET_SHAPES if d in DATASETS and not DATASETS[d].sr_only]
    return {(d, acc_tag(a)): load_dataset_mask(d, a) for d in names for a in accs}


def mask_summary(masks: Mapping[tuple[str, str], np.ndarray]) -> str:
    """A table (text) of the masks: size, sampled lines (rows or columns, whichever the mask
    samples whole) and sampled fraction."""
    from kdmri.physics.masks import centre_band, line_profile, phase_encode_axis, sampled_fraction

    lines = [f"{'dataset':<8} {'acc':>4} {'size':>8} {'lines':>14} {'centre':>6} {'sampled':>8}"]
    for (ds, acc), m in masks.items():
        kind = "rows" if phase_encode_axis(m) == 0 else "cols"
        profile = line_profile(m)
        lines.append(f"{ds:<8} {acc:>4} {m.shape[0]:>4}x{m.shape[1]:<3} "
                     f"{int(profile.sum()):>4}/{profile.size:<4} {kind} {centre_band(m):>6} "
                     f"{100 * sampled_fraction(m):>7.2f}%")
    return "\n".join(lines)


def equispaced_mask(shape: tuple[int, int], acc: int, centre_fraction: float | None = None,
                    axis: int = 1) -> np.ndarray:
    """A regular Cartesian mask (unshifted layout): every ``acc``-th phase-encode line plus the
    fully sampled centre band of :func:`kdmri.physics.masks.cartesian_mask`; ``axis`` is the
    phase-encode axis (1: whole columns, 0: whole rows). Regular sampling folds the image onto
    itself (coherent aliasing) where random sampling spreads it as noise."""
    from kdmri.physics.masks import _centre_fraction

    n = shape[axis]
    lines = np.zeros(n, dtype=bool)
    lines[n // 2 % acc :: acc] = True
    frac = centre_fraction if centre_fraction is not None else _centre_fraction(acc)
    n_centre = max(1, int(round(n * frac)))
    n_centre += 1 - n_centre % 2
    lines[n // 2 - n_centre // 2 : n // 2 - n_centre // 2 + n_centre] = True
    profile = lines[None, :] if axis == 1 else lines[:, None]
    return np.fft.ifftshift(np.broadcast_to(profile, shape).astype(np.float32))


def validation_slice(cfg: Config, index: int | None = None, task: str = "recon") -> dict:
    """One validation item as a batch of one, from the same slices
    :func:`kdmri.evaluation.evaluate` uses (``max_val_slices`` applied); default: the middle
    one. ``task="recon"``: tensors ``input`` (zero-filled), ``target``, ``kspace``, ``mask``
    ``(1, 1, H, W)``; ``task="sr"``: ``input`` (the low-resolution image, k-space block
    ``cfg.sr_keep``) and ``target``. Both with ``volume`` and ``slice`` lists."""
    from torch.utils.data import default_collate

    from kdmri.models.tasks import RECON, SR

    tasks = {"recon": RECON, "sr": SR}
    if task not in tasks:
        raise ConfigError(f"task={task!r}: expected one of {sorted(tasks)}")
    ensure_data(cfg)
    ds = tasks[task].dataset(cfg, "validation")
    i = len(ds) // 2 if index is None else index
    if not -len(ds) <= i < len(ds):
        raise IndexError(f"index {i}: the validation set has {len(ds)} slices")
    return default_collate([ds[i]])


def image(x) -> np.ndarray:
    """A tensor or array ``(1, 1, H, W)`` / ``(H, W)`` as a 2-D numpy image."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    return arr.reshape(arr.shape[-2:]) if arr.ndim > 2 else arr


# =========================================================================== models


def parameter_summary(models: Mapping[str, Any]) -> str:
    """Parameter counts of ``{name: model}``; every model after the first is compared with
    the first (e.g. ``student: 49,285 parameters, 65.2 % fewer than the teacher``)."""
    from kdmri.models.dccnn import count_parameters

    counts = {name: count_parameters(m) for name, m in models.items()}
    first, ref = next(iter(counts.items()))
    lines = []
    for name, n in counts.items():
        arch = getattr(models[name], "config", None)
        shape = f" ({arch.n_cascades} cascades x {arch.n_convs} convs)" if hasattr(arch, "n_convs") else ""
        text = f"{name}: {n:,} parameters{shape}"
        if name != first:
            text += f", {100 * (1 - n / ref):.1f} % fewer than the {first}"
        lines.append(text)
    return "\n".join(lines)


def describe_cascade(model) -> str:
    """The channel widths of one DC-CNN cascade: ``1 -> 32 -> 32 -> 1 (3 3x3 convs, ReLU between)``."""
    convs = list(model.cascades[0].convs)
    widths = [convs[0].in_channels] + [c.out_channels for c in convs]
    k = "x".join(str(s) for s in convs[0].kernel_size)
    return " -> ".join(map(str, widths)) + f" ({len(convs)} {k} convs, ReLU between)"


def forward(model, batch: Mapping[str, Any], features: bool = True):
    """Run a model on a batch from :func:`validation_slice` without gradients: a DC-CNN
    (the batch has ``kspace``: ``model(input, kspace, mask)``) or a VDSR
    (``model(input)``), through the task's own forward as in training."""
    import torch

    from kdmri.training.strategy import to_device

    model.eval()
    with torch.no_grad():
        return _task(batch).forward(model, to_device(dict(batch), next(model.parameters()).device), features)


def _task(batch: Mapping[str, Any]):
    """The task a validation batch belongs to: reconstruction (with k-space) or SR."""
    from kdmri.models.tasks import RECON, SR

    return RECON if "kspace" in batch else SR


def initial_model(cfg: Config, arch: str):
    """A DC-CNN (``"teacher"`` / ``"student"``) initialised as a training run with ``cfg``
    initialises it (the same seed), on ``cfg``'s device."""
    from kdmri.config import seed_everything
    from kdmri.models.dccnn import build_dccnn

    seed_everything(cfg.seed)
    return build_dccnn(arch).to(cfg.torch_device()).eval()


def trained_model(cfg: Config, role: str, method: str | None = None):
    """The best checkpoint of ``experiments/.../<method>_<role>`` as an eval-mode model."""
    from kdmri.checkpoint import BEST, load_model

    model, _ = load_model(cfg.experiment(role, method) / BEST, cfg.torch_device())
    return model.eval()


def attention_maps(model, batch: Mapping[str, Any], layers: Iterable[str], mode: str = "sample") -> list:
    """KD-MRI attention maps (:func:`kdmri.distill.losses.attention_map`) of the named features of
    ``model`` -- a DC-CNN (``"cascade1.conv3"`` ...) or a VDSR (``"conv1"`` ...) -- on the
    first item of ``batch``, each as an ``(H, W)`` numpy array."""
    from kdmri.distill.losses import attention_map

    features = forward(model, batch, features=True).features
    h, w = batch["input"].shape[-2:]
    maps = []
    for name in layers:
        if name not in features:
            raise KeyError(f"layer {name!r}: not among the model's features {sorted(features)}")
        maps.append(attention_map(features[name][:1], mode)[0].reshape(h, w).cpu().numpy())
    return maps


def feature_loss_value(cfg: Config, student, teacher, batch: Mapping[str, Any]) -> float:
    """The feature loss of ``cfg`` between ``student`` and ``teacher`` on ``batch``, built as
    the training stages build it (:func:`kdmri.distill.registry.feature_loss_from_config`:
    ``feature_loss``, ``feature_pairs`` or the network's default pairs, ``feature_options``;
    FitNets regressors freshly initialised), so a figure shows what the stage trains on."""
    import torch

    from kdmri.distill.registry import feature_loss_from_config, feature_probe
    from kdmri.models.features import record_all
    from kdmri.models.tasks import default_feature_pairs

    with record_all(student) as s, record_all(teacher) as t:  # every layer, by path and name
        forward(student, batch, features=False)
        forward(teacher, batch, features=False)
    defaults = cfg.feature_pairs or default_feature_pairs(student, teacher)
    loss = feature_loss_from_config(cfg, defaults, feature_probe(s, t))
    with torch.no_grad():
        return float(loss.to(next(student.parameters()).device)(s, t))


# =========================================================================== results


def read_train_logs(cfg: Config, roles: Mapping[str, str]) -> dict:
    """``{label: train_log.csv as a DataFrame}`` for ``{label: role}``."""
    import pandas as pd

    logs = {}
    for label, role in roles.items():
        path = cfg.experiment(role) / "train_log.csv"
        if not path.is_file():
            raise DataError(f"{path}: not found (train the {role!r} stage first)")
        logs[label] = pd.read_csv(path)
    return logs


def reconstructions(cfg: Config, roles: Mapping[str, str], batch: Mapping[str, Any]) -> dict:
    """Images of the validation slice in ``batch`` for ``{label: role}``: ``"target"`` is
    the fully sampled image, any other role is read from that experiment's
    ``results/<volume>.h5`` (written by :func:`kdmri.evaluation.evaluate.evaluate`; ``"zf"`` for the
    zero-filled baseline)."""
    import h5py

    volume, slice_no = batch["volume"][0], int(batch["slice"][0])
    images = {}
    for label, role in roles.items():
        if role == "target":
            images[label] = image(batch["target"])
            continue
        path = cfg.experiment(role) / "results" / f"{volume}.h5"
        if not path.is_file():
            raise DataError(f"{path}: not found (evaluate the {role!r} stage first)")
        with h5py.File(path, "r") as fh:
            slices = [int(s) for s in fh["slices"][()]]
            if slice_no not in slices:
                raise DataError(f"{path}: slice {slice_no} was not evaluated (slices {slices})")
            images[label] = fh["reconstruction"][:, :, slices.index(slice_no)]
    return images


def available_reconstructions(cfg: Config, batch: Mapping[str, Any], rows=None,
                              target_after: str = "ZF") -> tuple[dict, list[str]]:
    """``({label: image (H, W)}, missing)``: the reconstructions of the validation slice in
    ``batch`` (:func:`validation_slice`) by every model of ``rows`` (default
    :data:`kdmri.reporting.tables.RECON_ROWS`) that has been evaluated, with the fully
    sampled image as ``"target"`` after ``target_after`` (first if that row is absent),
    ready for :func:`kdmri.reporting.plots.reconstruction_figure`; rows without
    reconstructions are named in ``missing``."""
    from kdmri.reporting.tables import RECON_ROWS, find_row_experiments

    found, missing = find_row_experiments(cfg, rows or RECON_ROWS, needs=f"results/{batch['volume'][0]}.h5")
    images = {} if target_after in found else reconstructions(cfg, {"target": "target"}, batch)
    for label, (method, role, _) in found.items():
        try:
            images.update(reconstructions(cfg.replace(method=method), {label: role}, batch))
        except DataError as exc:
            missing.append(f"{label}: {exc}")
        if label == target_after:
            images.update(reconstructions(cfg, {"target": "target"}, batch))
    return images, missing


def results_for(cfg: Config, roles: Iterable[str], method: str | None = None):
    """The paper-style table (:func:`kdmri.reporting.reports.results_table`) of ``roles`` of one
    dataset and acceleration, from the reports under ``cfg``'s experiments folder."""
    from kdmri.reporting.reports import collect_reports, results_table

    reports = collect_reports(cfg.experiments_path / cfg.dataset / f"acc_{cfg.acc}")
    return results_table(reports, [(method or cfg.method, r) for r in roles])


def slice_differences(cfg: Config, role_a: str, role_b: str, metric: str = "psnr"):
    """Per-slice ``metric`` of ``role_a`` minus ``role_b`` (paired on volume and slice, see
    :func:`kdmri.reporting.statistics.paired_slices`), from the two experiments'
    ``metrics.csv``."""
    from kdmri.reporting.statistics import paired_slices

    merged = paired_slices(cfg.experiment(role_a), cfg.experiment(role_b))
    return (merged[f"{metric}_a"] - merged[f"{metric}_b"]).to_numpy()


def describe_difference(diff: Mapping[str, float], label: str = "KD - student", metric: str = "PSNR",
                        unit: str = "dB", confidence: float = 0.95) -> str:
    """``KD - student PSNR: +0.54 dB, 95 % CI [+0.31, +0.77] over 16 slices (paired)``, then,
    from :func:`kdmri.reporting.statistics.paired_comparison` with two volumes or more, the
    per-volume difference and what the slice-level interval assumes."""
    text = (f"{label} {metric}: {diff['mean']:+.3f} {unit}, {100 * confidence:.0f} % CI "
            f"[{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}] over {diff['n']} slices (paired)")
    if diff.get("volumes", 0) >= 2:
        text += (f"\nper volume: {diff['volume_mean']:+.3f} {unit}, {100 * confidence:.0f} % CI "
                 f"[{diff['volume_ci_low']:+.3f}, {diff['volume_ci_high']:+.3f}] "
                 f"over {diff['volumes']} volumes")
    if "assumes" in diff:
        text += f"\nnote: {diff['assumes']}"
    return text


def markdown(table) -> Any:
    """A results table as rendered markdown in a notebook (with its ``attrs["note"]``)."""
    from IPython.display import Markdown

    from kdmri.reporting.reports import to_markdown

    note = table.attrs.get("note") if hasattr(table, "attrs") else None
    return Markdown(to_markdown(table) + (f"\n\n*{note}*" if note else ""))


# =========================================================================== notebook checks
# Properties the notebooks print in cells tagged nbval-check-output (``True`` when they hold).


def first_epoch_below(cfg: Config, role: str, reference: str, column: str = "train_l1") -> bool:
    """Whether ``role``'s first-epoch ``column`` of ``train_log.csv`` is below ``reference``'s
    (e.g. the KD student, initialised from the feature stage, starts below the student
    trained from scratch with the same settings)."""
    logs = read_train_logs(cfg, {role: role, reference: reference})
    for label, log in logs.items():
        if column not in log.columns or log.empty:
            raise DataError(f"{cfg.experiment(label) / 'train_log.csv'}: no {column!r} value "
                            f"(columns {list(log.columns)})")
    return bool(logs[role][column].iloc[0] < logs[reference][column].iloc[0])


def sr_input_is_truncation(batch: Mapping[str, Any], keep, atol: float = 1e-5) -> bool:
    """Whether the super-resolution ``batch["input"]`` is the k-space truncation of
    ``batch["target"]`` (:func:`kdmri.data.sr.truncate_kspace` keeping the central ``keep``)."""
    from kdmri.data.sr import truncate_kspace

    expected = truncate_kspace(image(batch["target"]), keep)
    return bool(np.allclose(image(batch["input"]), expected, rtol=0, atol=atol))
