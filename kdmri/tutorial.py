"""Small helpers the tutorial notebooks call, and the tools that keep notebook files tidy.

Notebook conventions (docs/NOTEBOOKS.md has the full text):

* opening cells: (1) a markdown title with the "Open in Colab" badge
  (:func:`colab_badge`); (2) the set-up cell (:func:`setup_source`, identical in every
  notebook) that installs kdmri where it is not importable; (3) imports ending with
  ``print(nb.environment_report())``; (4) the one cell tagged ``parameters`` holding plain
  literals (the quick CI profile of ``params/ci.yaml``, plus ``params_file = None``);
  (5) ``cfg = nb.notebook_config(params_file, name=name, ...)`` with every parameter.
* precedence: Config defaults < the ``params_file`` YAML < the parameters cell (values
  ``None`` there defer to the file). A batch run sets both consistently.
* committed notebooks keep outputs only in cells tagged ``nbval-check-output`` (executed,
  with their execution count); :func:`strip_outputs`, :func:`check_notebook`.

:data:`REPO_URL` is the one place the repository address lives; after changing it run
``python -m kdmri notebooks sync`` to rewrite the badges and set-up cells.
"""

from __future__ import annotations

import ast
import platform
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kdmri.config import FIELDS, Config, load_config, read_params, resolve_params
from kdmri.errors import ConfigError, DataError
from kdmri.io import atomic_path
from kdmri.paths import project_root

#: The repository address: a placeholder until the repository is published. Set it here,
#: then run ``python -m kdmri notebooks sync`` (badges and set-up cells follow it).
REPO_URL = "https://github.com/<org>/kdmri"
BRANCH = "main"
NOTEBOOK_FOLDER = "notebooks"
CLONE_DIR = "kdmri-repo"

# Without ipywidgets tqdm.auto falls back to text bars; its warning about that is noise here.
warnings.filterwarnings("ignore", message="IProgress not found")

PARAMETERS_TAG = "parameters"
CHECK_TAG = "nbval-check-output"
COLAB_BADGE_SVG = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE_SVG = "https://mybinder.org/badge_logo.svg"


# =========================================================================== links


def _repo_path(repo_url: str) -> str:
    return repo_url.rstrip("/").removeprefix("https://github.com/")


def colab_url(notebook: str | Path, repo_url: str = REPO_URL, branch: str = BRANCH) -> str:
    """Colab address of ``notebooks/<name>`` on GitHub."""
    return (f"https://colab.research.google.com/github/{_repo_path(repo_url)}/blob/{branch}/"
            f"{NOTEBOOK_FOLDER}/{Path(notebook).name}")


def colab_badge(notebook: str | Path, repo_url: str = REPO_URL, branch: str = BRANCH) -> str:
    """The markdown "Open in Colab" badge of a notebook."""
    return f"[![Open In Colab]({COLAB_BADGE_SVG})]({colab_url(notebook, repo_url, branch)})"


def binder_url(notebook: str | Path | None = None, repo_url: str = REPO_URL, branch: str = BRANCH) -> str:
    """Binder address opening JupyterLab on ``notebooks/<name>`` (or on the folder)."""
    target = f"{NOTEBOOK_FOLDER}/{Path(notebook).name}" if notebook else NOTEBOOK_FOLDER
    return f"https://mybinder.org/v2/gh/{_repo_path(repo_url)}/{branch}?urlpath=lab/tree/{target}"


def binder_badge(notebook: str | Path | None = None, repo_url: str = REPO_URL, branch: str = BRANCH) -> str:
    """The markdown "launch binder" badge."""
    return f"[![Binder]({BINDER_BADGE_SVG})]({binder_url(notebook, repo_url, branch)})"


def setup_source(repo_url: str = REPO_URL) -> str:
    """Source of the set-up cell (the second cell of every notebook).

    It runs before kdmri can be imported, so it is plain Python: where kdmri is missing
    (Colab, a bare kernel) it clones the repository -- kdmri with params/ and us_masks/ --
    and installs it in editable mode; elsewhere it does nothing.
    """
    return f'''# Set-up: where kdmri is not installed (Colab, a bare kernel) clone the repository, which
# brings params/ and us_masks/ along, and install it; elsewhere this cell does nothing.
import importlib.util
import os
import subprocess
import sys

REPO_URL = "{repo_url}"  # kdmri.tutorial.REPO_URL (docs/NOTEBOOKS.md)
if importlib.util.find_spec("kdmri") is None:
    if not os.path.isdir("{CLONE_DIR}"):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "{CLONE_DIR}"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", "{CLONE_DIR}"], check=True)
    sys.path.insert(0, os.path.abspath("{CLONE_DIR}"))'''


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
    """The committed masks ``{(dataset, "4x"): mask (H, W)}`` from us_masks/."""
    from kdmri.paths import acc_tag
    from kdmri.physics.masks import DATASET_SHAPES, load_dataset_mask

    names = list(datasets) if datasets is not None else [d for d in DATASET_SHAPES if d != "calgary"]
    return {(d, acc_tag(a)): load_dataset_mask(d, a) for d in names for a in accs}


def mask_summary(masks: Mapping[tuple[str, str], np.ndarray]) -> str:
    """A table (text) of the masks: size, sampled lines and sampled fraction."""
    from kdmri.physics.masks import sampled_fraction

    lines = [f"{'dataset':<8} {'acc':>4} {'size':>8} {'lines':>9} {'sampled':>8}"]
    for (ds, acc), m in masks.items():
        n_lines = int(np.asarray(m).any(axis=0).sum())
        lines.append(f"{ds:<8} {acc:>4} {m.shape[0]:>4}x{m.shape[1]:<3} {n_lines:>4}/{m.shape[1]:<4} "
                     f"{100 * sampled_fraction(m):>7.2f}%")
    return "\n".join(lines)


def equispaced_mask(shape: tuple[int, int], acc: int, centre_fraction: float | None = None) -> np.ndarray:
    """A regular Cartesian mask (unshifted layout): every ``acc``-th phase-encode line plus the
    fully sampled centre band of :func:`kdmri.physics.masks.cartesian_mask`. Regular sampling folds
    the image onto itself (coherent aliasing) where random sampling spreads it as noise."""
    from kdmri.physics.masks import _centre_fraction

    h, w = shape
    lines = np.zeros(w, dtype=bool)
    lines[w // 2 % acc :: acc] = True
    frac = centre_fraction if centre_fraction is not None else _centre_fraction(acc)
    n_centre = max(1, int(round(w * frac)))
    n_centre += 1 - n_centre % 2
    lines[w // 2 - n_centre // 2 : w // 2 - n_centre // 2 + n_centre] = True
    return np.fft.ifftshift(np.broadcast_to(lines[None, :], (h, w)).astype(np.float32))


def validation_slice(cfg: Config, index: int | None = None) -> dict:
    """One validation item as a batch of one (tensors ``(1, 1, H, W)``, ``volume`` and
    ``slice`` lists), from the same slices :func:`kdmri.evaluation.evaluate.evaluate` uses; default:
    the middle one."""
    from torch.utils.data import default_collate

    from kdmri.models.tasks import RECON

    ensure_data(cfg)
    ds = RECON.dataset(cfg, "validation")
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
    """Run a DC-CNN on a batch from :func:`validation_slice` without gradients."""
    import torch

    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        return model(batch["input"].to(device), batch["kspace"].to(device), batch["mask"].to(device),
                     return_features=features)


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
    ``model`` on the first item of ``batch``, each as an ``(H, W)`` numpy array."""
    from kdmri.distill.losses import attention_map

    out = forward(model, batch, features=True)
    h, w = batch["input"].shape[-2:]
    maps = []
    for name in layers:
        if name not in out.features:
            raise KeyError(f"layer {name!r}: not among the model's features {sorted(out.features)}")
        maps.append(attention_map(out.features[name], mode)[0].reshape(h, w).cpu().numpy())
    return maps


def feature_loss_value(cfg: Config, student, teacher, batch: Mapping[str, Any]) -> float:
    """The feature-stage loss of ``cfg`` (``feature_loss`` on the default layer pairs)
    between ``student`` and ``teacher`` on ``batch``."""
    from kdmri.distill.losses import build_feature_loss, default_pairs

    options = dict(cfg.feature_options)
    if cfg.feature_loss == "at_kdmri":
        options.setdefault("mode", cfg.at_mode)
    pairs = [tuple(p) for p in (cfg.feature_pairs or default_pairs())]
    loss = build_feature_loss(cfg.feature_loss, pairs, **options)
    return float(loss(forward(student, batch).features, forward(teacher, batch).features))


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


def results_for(cfg: Config, roles: Iterable[str], method: str | None = None):
    """The paper-style table (:func:`kdmri.reporting.results.results_table`) of ``roles`` of one
    dataset and acceleration, from the reports under ``cfg``'s experiments folder."""
    from kdmri.reporting.results import collect_reports, results_table

    reports = collect_reports(cfg.experiments_path / cfg.dataset / f"acc_{cfg.acc}")
    return results_table(reports, [(method or cfg.method, r) for r in roles])


def slice_differences(cfg: Config, role_a: str, role_b: str, metric: str = "psnr"):
    """Per-slice ``metric`` of ``role_a`` minus ``role_b`` (paired on volume and slice), from
    the two experiments' ``metrics.csv``."""
    from kdmri.reporting.results import read_slice_metrics

    a, b = read_slice_metrics(cfg.experiment(role_a)), read_slice_metrics(cfg.experiment(role_b))
    merged = a.merge(b, on=["volume", "slice"], suffixes=("_a", "_b"))
    return (merged[f"{metric}_a"] - merged[f"{metric}_b"]).to_numpy()


def describe_difference(diff: Mapping[str, float], label: str = "KD - student", metric: str = "PSNR",
                        unit: str = "dB", confidence: float = 0.95) -> str:
    """``KD - student PSNR: +0.54 dB, 95 % CI [+0.31, +0.77] over 16 slices``."""
    return (f"{label} {metric}: {diff['mean']:+.3f} {unit}, {100 * confidence:.0f} % CI "
            f"[{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}] over {diff['n']} slices (paired)")


def markdown(table) -> Any:
    """A results table as rendered markdown in a notebook."""
    from IPython.display import Markdown

    from kdmri.reporting.results import to_markdown

    return Markdown(to_markdown(table))


# =========================================================================== notebook files


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def read_notebook(path: str | Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def write_notebook(nb, path: str | Path) -> None:
    import nbformat

    with atomic_path(path) as tmp:
        nbformat.write(nb, str(tmp))


def strip_outputs(nb):
    """Apply the output rule in place and return ``nb``: code cells keep outputs and
    execution counts only when tagged ``nbval-check-output``; papermill's injected cells
    and execution metadata are removed."""
    nb.cells = [c for c in nb.cells if "injected-parameters" not in _tags(c)]
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in ("papermill", "execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        if CHECK_TAG not in _tags(cell):
            cell.outputs = []
            cell.execution_count = None
        else:
            cell.outputs = _coalesce_streams(cell.outputs)
    return nb


def _coalesce_streams(outputs: list) -> list:
    """Merge consecutive stream outputs of the same name (stdout split into chunks)."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and prev is not None
                and prev.get("output_type") == "stream" and prev.get("name") == out.get("name")):
            prev["text"] = "".join(prev["text"]) + "".join(out["text"])
            continue
        merged.append(out)
    return merged


def parameters_cell(nb) -> tuple[int, Any]:
    """``(index, cell)`` of the one cell tagged ``parameters``; ConfigError otherwise."""
    found = [(i, c) for i, c in enumerate(nb.cells) if PARAMETERS_TAG in _tags(c)]
    if len(found) != 1:
        raise ConfigError(f"expected exactly one cell tagged {PARAMETERS_TAG!r}, found {len(found)}")
    return found[0]


def parameter_defaults(nb) -> dict[str, Any]:
    """The plain-literal defaults of the parameters cell, ``{name: value}``; ConfigError
    if the cell holds anything but ``name = <literal>`` statements."""
    _, cell = parameters_cell(nb)
    try:
        tree = ast.parse(_source(cell))
    except SyntaxError as exc:
        raise ConfigError(f"parameters cell: not valid Python ({exc})") from exc
    values = {}
    for stmt in tree.body:
        ok = (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
              and isinstance(stmt.targets[0], ast.Name))
        if ok:
            try:
                values[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                continue
            except ValueError:
                pass
        raise ConfigError(f"parameters cell, line {stmt.lineno}: expected `name = <plain literal>`, "
                          f"got {ast.get_source_segment(_source(cell), stmt)!r}")
    return values


_ABSOLUTE = re.compile(r"(?<![\w.~])(?:/(?:home|Users|work|tmp|root|mnt|content|private|var|opt)/"
                       r"|[A-Za-z]:\\Users\\)")


def check_notebook(path: str | Path) -> list[str]:
    """Every breach of the notebook conventions in one notebook file (empty if none)."""
    import nbformat

    path = Path(path)
    problems: list[str] = []
    try:
        nb = read_notebook(path)
        nbformat.validate(nb)
    except Exception as exc:
        return [f"not a valid notebook: {exc}"]
    cells = nb.cells
    if len(cells) < 5:
        return [f"expected at least the 5 opening cells, found {len(cells)} cells"]
    title = _source(cells[0])
    if cells[0].cell_type != "markdown" or not title.startswith("# "):
        problems.append("cell 1: expected a markdown title starting with '# '")
    if colab_badge(path.name) not in title:
        problems.append(f"cell 1: missing the Colab badge {colab_badge(path.name)} "
                        "(python -m kdmri notebooks sync)")
    if cells[1].cell_type != "code" or _source(cells[1]) != setup_source():
        problems.append("cell 2: expected the standard set-up cell (python -m kdmri notebooks sync)")
    if cells[2].cell_type != "code" or "environment_report()" not in _source(cells[2]):
        problems.append("cell 3: expected the imports cell printing nb.environment_report()")
    try:
        index, _ = parameters_cell(nb)
        defaults = parameter_defaults(nb)
        if index != 3:
            problems.append(f"the parameters cell is cell {index + 1}; expected cell 4")
        if defaults.get("params_file", "missing") is not None:
            problems.append("parameters cell: expected `params_file = None`")
        later = "\n".join(_source(c) for c in cells[index + 1:] if c.cell_type == "code")
        for name in defaults:
            if not re.search(rf"\b{re.escape(name)}\b", later):
                problems.append(f"parameter {name!r} is never used after the parameters cell")
    except ConfigError as exc:
        problems.append(str(exc))
    for i, cell in enumerate(cells, 1):
        text = _source(cell)
        if cell.cell_type == "code":
            checked = CHECK_TAG in _tags(cell)
            if not checked and (cell.outputs or cell.execution_count is not None):
                problems.append(f"cell {i}: outputs or an execution count in a cell not tagged "
                                f"{CHECK_TAG!r} (python -m kdmri notebooks strip)")
            if checked:
                if cell.execution_count is None or not cell.outputs:
                    problems.append(f"cell {i}: tagged {CHECK_TAG!r} but not executed with outputs "
                                    "(python -m kdmri notebooks refresh)")
                for out in cell.outputs:
                    if out.get("output_type") == "stream" and out.get("name") == "stdout":
                        text += "".join(out.get("text", ""))
                    elif out.get("output_type") == "execute_result" and set(out.get("data", {})) <= {
                            "text/plain"}:
                        text += "".join(out["data"].get("text/plain", ""))
                    else:
                        problems.append(f"cell {i}: checked outputs must be stdout or plain text, "
                                        f"got {out.get('output_type')} {sorted(out.get('data', {}))}")
        if "injected-parameters" in _tags(cell):
            problems.append(f"cell {i}: a papermill injected-parameters cell was committed")
        if _ABSOLUTE.search(text):
            problems.append(f"cell {i}: contains an absolute path ({_ABSOLUTE.search(text).group(0)}...)")
    if "papermill" in nb.metadata:
        problems.append("notebook metadata: papermill metadata was committed "
                        "(python -m kdmri notebooks strip)")
    return problems


def sync_notebook(path: str | Path, repo_url: str = REPO_URL) -> bool:
    """Rewrite the Colab badge and the set-up cell of ``path`` for ``repo_url``; returns
    whether the file changed."""
    path = Path(path)
    nb = read_notebook(path)
    before = nb.cells[0].source, nb.cells[1].source
    badge = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
    title = _source(nb.cells[0])
    new_badge = colab_badge(path.name, repo_url)
    title = badge.sub(lambda _: new_badge, title) if badge.search(title) else f"{title}\n\n{new_badge}"
    nb.cells[0].source = title
    nb.cells[1].source = setup_source(repo_url)
    if (nb.cells[0].source, nb.cells[1].source) == before:
        return False
    write_notebook(nb, path)
    return True


def opening_cells(name: str, title: str, parameters: Mapping[str, Any], imports: str = "") -> list:
    """The fixed opening cells of a new notebook ``name`` (see the module docstring)."""
    import nbformat.v4 as nbf

    params = "\n".join(["params_file = None  # a params YAML (path or name in params/); batch runs set it",
                        *(f"{k} = {v!r}" for k, v in parameters.items() if k != "params_file")])
    config = "cfg = nb.notebook_config(\n    params_file,\n" + "".join(
        f"    {k}={k},\n" for k in parameters if k != "params_file") + ")\ndata_folder = nb.ensure_data(cfg)"
    imports = imports or "from kdmri import tutorial as nb\nfrom kdmri.reporting import plots"
    return [
        nbf.new_markdown_cell(f"# {title}\n\n{colab_badge(name)}"),
        nbf.new_code_cell(setup_source()),
        nbf.new_code_cell(f"%matplotlib inline\n{imports}\n\nprint(nb.environment_report())"),
        nbf.new_code_cell(params, metadata={"tags": [PARAMETERS_TAG]}),
        nbf.new_code_cell(config),
    ]


def new_notebook(path: str | Path, title: str, parameters: Mapping[str, Any] | None = None) -> Path:
    """Write a new notebook with the opening cells; parameters default to ``params/ci.yaml``."""
    import nbformat.v4 as nbf

    path = Path(path)
    if path.exists():
        raise ConfigError(f"{path}: already exists")
    params = dict(parameters) if parameters is not None else read_params("ci")
    nb = nbf.new_notebook(cells=opening_cells(path.name, title, params))
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_notebook(nb, path)
    return path
