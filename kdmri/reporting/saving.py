"""Figures of a batch run saved as files: every figure a notebook displays (and any passed to
:func:`save_figure`) also as PNG and PDF under ``runs/<dataset>/acc_<acc>/figures/``, when
the params file names that folder (``notebook_parameters.figures_dir``, written by the batch
runner); interactive notebooks save nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: Where :func:`save_figure` writes (``figures_dir`` of the params file or the cell), and how
#: many figures this kernel has shown; the batch names the notebook in :data:`NOTEBOOK_ENV`.
FIGURES: dict[str, Any] = {"dir": None, "count": 0, "hooked": False}
NOTEBOOK_ENV = "KDMRI_NOTEBOOK"


def set_figures_dir(folder) -> None:
    """Save every figure the notebook displays from now on under ``folder`` (``None``: stop)."""
    FIGURES["dir"] = Path(folder) if folder else None
    if FIGURES["dir"] is None or FIGURES["hooked"]:
        return
    try:
        from IPython import get_ipython
        from matplotlib.figure import Figure
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    try:
        previous = formatter.lookup_by_type(Figure)
    except KeyError:
        return

    def png(fig, *args, **kwargs):
        FIGURES["count"] += 1
        save_figure(fig, f"{os.environ.get(NOTEBOOK_ENV, 'notebook')}_{FIGURES['count']:02d}")
        return previous(fig, *args, **kwargs)

    formatter.for_type(Figure, png)
    FIGURES["hooked"] = True


def save_figure(fig, name: str, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``<figures_dir>/<name>.png`` and ``.pdf`` (atomically) when a run folder
    is configured (batch runs: ``runs/<dataset>/acc_<acc>/figures``, through the resolved
    params file's ``figures_dir``); returns the paths written (``[]`` when none is set)."""
    from kdmri.io import atomic_path

    folder = FIGURES["dir"]
    if folder is None:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        with atomic_path(folder / f"{name}.{fmt}") as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight")
        written.append(folder / f"{name}.{fmt}")
    return written
