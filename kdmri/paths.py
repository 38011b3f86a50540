"""Where things live: params/, us_masks/, datasets/, experiments/, runs/.

Every path is resolved here, never by relative paths in notebooks or scripts, so a
notebook run by nbval (in notebooks/) or by papermill (in the caller's folder) finds the
same files. The project root is the folder holding ``params/`` and ``us_masks/``: the
checkout kdmri is imported from, or ``$KDMRI_HOME`` when set.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def project_relative(path: Path | str) -> str:
    """``path`` relative to the project root when it lies under it (configs resolve relative
    paths against the root, so a moved or cloned checkout finds the same folders), else as given."""
    try:
        return str(Path(path).resolve().relative_to(project_root().resolve()))
    except ValueError:
        return str(path)


def project_root() -> Path:
    """Return the project root (``$KDMRI_HOME``, else the checkout kdmri lives in, else cwd)."""
    env = os.environ.get("KDMRI_HOME")
    if env:
        return Path(env).expanduser().resolve()
    candidate = _PACKAGE_DIR.parent
    if (candidate / "params").is_dir() or (candidate / "us_masks").is_dir():
        return candidate
    return Path.cwd().resolve()


def params_dir() -> Path:
    """Folder of the parameter YAML files."""
    return project_root() / "params"


def masks_dir() -> Path:
    """Folder of the undersampling masks, ``us_masks/<dataset>/mask_<acc>.npy``."""
    return project_root() / "us_masks"


def datasets_dir() -> Path:
    """Default folder of prepared datasets, ``datasets/<dataset>/{train,validation}``."""
    return project_root() / "datasets"


def experiments_dir() -> Path:
    """Default folder of experiment outputs."""
    return project_root() / "experiments"


def runs_dir() -> Path:
    """Default folder of executed notebooks written by the batch runner."""
    return project_root() / "runs"


def acc_tag(acc: int | str) -> str:
    """Normalise an acceleration to the tag used in file names and HDF5 keys: 4 -> '4x'."""
    text = str(acc).strip().lower().removesuffix("x")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if isinstance(acc, bool) or not math.isfinite(value) or not value.is_integer() or value < 1:
        from kdmri.errors import ConfigError

        raise ConfigError(f"acc={acc!r}: expected an integer acceleration >= 1 such as 4, '4' or '4x'")
    return f"{int(value)}x"


def mask_path(dataset: str, acc: int | str, root: Path | None = None) -> Path:
    """Path of the committed mask of ``dataset`` at ``acc``: us_masks/<dataset>/mask_<acc>.npy."""
    return (root or masks_dir()) / dataset / f"mask_{acc_tag(acc)}.npy"


def experiment_dir(
    dataset: str, acc: int | str, method: str, role: str, root: Path | str | None = None
) -> Path:
    """The one experiment-path helper: ``<root>/<dataset>/acc_<acc>/<method>_<role>/``.

    ``method`` names the recipe (``baseline``, ``kdmri``, ``sft``...), ``role`` the network
    trained in it (``teacher``, ``student``, ``feature``, ``kd``...), so a later stage finds
    the checkpoint of an earlier one without being told.
    """
    base = Path(root) if root is not None else experiments_dir()
    return base / dataset / f"acc_{acc_tag(acc)}" / f"{method}_{role}"
