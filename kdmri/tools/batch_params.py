"""What the batch runner hands each executed notebook, besides the papermill parameters: the
resolved params file (Config fields plus ``notebook_parameters``, among them ``figures_dir``),
the environment of the notebook's kernel, and the stages the plan will reuse."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kdmri.config import FIELDS, NOTEBOOK_KEY, notebook_parameters
from kdmri.data.sr_settings import sr_enabled  # also registers the params files' sr_keep check
from kdmri.errors import ConfigError

#: Environment of an executed notebook's kernel: no bar of other libraries' tqdm (every update
#: would be kept as an output of the cell); kdmri's own bars go to the job log
#: (:data:`kdmri.progress.PROGRESS_LOG_ENV`) and each training stage prints one summary line.
EXECUTED_ENV = {"TQDM_DISABLE": "1"}


@contextmanager
def executed_notebook_env(notebook: str | Path = "notebook", log: str | Path | None = None) -> Iterator[None]:
    """Set :data:`EXECUTED_ENV`, the notebook's name (figure file names) and, with ``log``, the
    file kdmri's progress bars write to, while its kernel is started (it inherits the
    environment)."""
    from kdmri.progress import PROGRESS_LOG_ENV
    from kdmri.reporting.saving import NOTEBOOK_ENV

    env = {**EXECUTED_ENV, NOTEBOOK_ENV: Path(notebook).stem}
    if log is not None:
        env[PROGRESS_LOG_ENV] = str(Path(log).resolve())
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def resolved_params(job, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The resolved params file of ``job``: its Config, and ``notebook_parameters`` (the
    file's, the ``--set`` notebook-only overrides, ``figures_dir`` = the run's figures/)."""
    knobs = dict(notebook_parameters(job.params))
    knobs.update({k: v for k, v in (overrides or {}).items() if k not in FIELDS})
    knobs["figures_dir"] = str(Path(job.output).parent / "figures")
    return {**job.cfg.to_dict(), NOTEBOOK_KEY: knobs}


def describe_reuse(params_files: Sequence[str | Path], overrides: Mapping[str, Any] | None = None) -> str:
    """The stages each params file's notebooks would train twice: trained once, then reused."""
    from kdmri.training.plan import reused_stages

    lines = []
    for pf in params_files:
        try:
            same = reused_stages(pf, dict(overrides or {}))
        except ConfigError:
            continue  # the plan names the problem
        if same:
            lines.append(f"{pf}: {len(same)} stage(s) identical to another, reused (not retrained):")
            lines += [f"  {line}" for line in same]
    return "\n".join(lines) or "no stage is trained twice"


def notebook_runs_for(notebook: str | Path, cfg) -> bool:
    """Whether the batch runs ``notebook`` for ``cfg``: a notebook whose metadata says
    ``kdmri.runs_if: sr_enabled`` (notebook 06) runs only for SR settings the papers made."""
    import nbformat

    condition = nbformat.read(str(notebook), as_version=4).metadata.get("kdmri", {}).get("runs_if")
    return condition != "sr_enabled" or sr_enabled(cfg)
