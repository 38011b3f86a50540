"""Names that reach a job script or generated code, checked against a pattern.

A value written into a SLURM job script (``#SBATCH --job-name=...``) or into a notebook's
set-up cell must not end its line or its string: a newline in a dataset name would end the
directive and run the rest as a shell command, a quote in a repository address would run
code in every notebook. So these values are checked here against the patterns below (one
:class:`~kdmri.errors.ConfigError` naming the key and the pattern) and are, besides, quoted
where they are written (submitit ``shlex.quote``-s every ``#SBATCH`` value; the set-up cell
holds the address as a JSON string literal).
"""

from __future__ import annotations

import re

from kdmri.errors import ConfigError

#: dataset, method, job names: letters, digits and ``. _ + -``, starting with a letter or digit.
NAME = r"[A-Za-z0-9][A-Za-z0-9._+-]*"
#: SLURM partitions, accounts, memory: such names, separated by commas.
SLURM_NAMES = rf"{NAME}(,{NAME})*"
#: the name of another sbatch option (``--slurm-option KEY=VALUE``).
OPTION = r"[A-Za-z][A-Za-z0-9-]*"
#: the value of another sbatch option: printable characters, no line break.
VALUE = r"[^\x00-\x1f\x7f]+"
#: the repository address: ``https://host/path`` (the placeholder ``<org>`` allowed).
URL = r"https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~%@+<>-]+)+/?"


def checked(key: str, value, pattern: str) -> str:
    """``str(value)`` if it matches ``pattern`` entirely, else :class:`ConfigError` naming
    ``key``, the value and the pattern."""
    text = str(value)
    if not re.fullmatch(pattern, text):
        raise ConfigError(f"{key}={text!r}: not allowed here (it reaches a job script or generated "
                          f"code); expected a value matching the pattern {pattern}")
    return text
