"""The notebook-only parameters: knobs a notebook's ``parameters`` cell declares that are not
:class:`~kdmri.config.Config` fields (``kd_epochs``, ``ablations``, ``sr_epochs``...).

A params file holds them under ``notebook_parameters`` (:data:`kdmri.config.NOTEBOOK_KEY`,
read by :func:`kdmri.config.notebook_parameters`); a notebook resolves each one as: its cell's
value, else the file's, else :data:`NOTEBOOK_DEFAULTS`. Notebooks call
:func:`notebook_knobs` (``nb.notebook_knobs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdmri.config import notebook_parameters
from kdmri.errors import ConfigError
from kdmri.reporting.saving import set_figures_dir

#: Defaults of the notebook-only parameters (not Config fields) when neither a notebook's
#: parameters cell nor the params file's ``notebook_parameters`` sets them.
NOTEBOOK_DEFAULTS: dict[str, Any] = {
    "feature_losses": ["at_kdmri"], "kd_epochs": None,
    "ablations": ["neither", "imitation", "attention", "both"],
    "sr_epochs": None, "sr_max_train_slices": None, "sr_batch_size": None,
    "metric_level": "slice", "figures_dir": None,
    # notebooks 03-07: 'study' shows the study's published converged models, 'none' trains them
    # at the study's schedule (kdmri.tools.converged)
    "pretrained": "study",
}


def resolve_knobs(path: str | Path | None, knobs: dict[str, Any]) -> tuple[list, list[str]]:
    """``(values, changed)``: each of ``knobs`` (cell values, ``None`` deferring) resolved
    against the file's ``notebook_parameters`` and :data:`NOTEBOOK_DEFAULTS`; ``changed``
    names the cell values that override a different value of the file."""
    unknown = sorted(set(knobs) - set(NOTEBOOK_DEFAULTS))
    if unknown:
        raise ConfigError(f"notebook parameters {unknown}: not notebook-only parameters; known: "
                          f"{sorted(NOTEBOOK_DEFAULTS)} (Config fields go to notebook_config)")
    from_file = notebook_parameters(path) if path is not None else {}
    values, changed = [], []
    for name, value in knobs.items():
        if value is not None and name in from_file and value != from_file[name]:
            changed.append(f"{name}={from_file[name]!r} -> {value!r}")
        values.append(from_file.get(name, NOTEBOOK_DEFAULTS[name]) if value is None else value)
    return values, changed


def notebook_knobs(params_file: str | Path | None = None, verbose: bool = True, **knobs) -> tuple:
    """The notebook-only parameters, in the order given: the cell's value where not ``None``,
    else the params file's ``notebook_parameters``, else
    :data:`NOTEBOOK_DEFAULTS`; a cell value that differs from the file's is
    noted. ``figures_dir`` also sets where :func:`kdmri.reporting.saving.save_figure` writes.
    ``kd_epochs, ablations = nb.notebook_knobs(params_file, kd_epochs=kd_epochs, ablations=ablations)``."""
    values, changed = resolve_knobs(params_file, knobs)
    if verbose and changed:
        print("note: the parameters cell overrides the params file: " + ", ".join(changed))
    if "figures_dir" in knobs:
        set_figures_dir(values[list(knobs).index("figures_dir")])
    return tuple(values)
