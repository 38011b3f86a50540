"""The one atomic-write helper: every file kdmri writes goes through :func:`atomic_path`.

A file is written to a temporary file beside its destination, flushed, then renamed over
it (``os.replace`` is atomic on POSIX and Windows), so a crash or an error mid-write leaves
the previous file intact and no half-written file under the final name. The temporary file
is removed when writing fails. Its name, ``.<name>.<pid>.<random>.tmp``, is unique to one
write, so processes writing the same file at once (two batches sharing ``--out``) never
write into or rename each other's temporary file: the last rename wins, and the file is
always one complete version. Every temporary name ends in ``.tmp`` (ignored by git).

Commands that write where the user says (``reconstruct``, ``export``) first call
:func:`check_outputs`: an output never replaces one of the command's inputs, and replaces
an existing file only with ``--force``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kdmri.errors import ConfigError

TMP_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """A fresh temporary path beside ``path``: ``.<name>.<pid>.<random>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    >>> with atomic_path("report.json") as tmp:   # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether ``a`` and ``b`` name one file: equal once resolved (symbolic links followed),
    or, both existing, the same file (hard links)."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def check_outputs(outputs: Mapping[str, Path | str], inputs: Mapping[str, Path | str | None],
                  force: bool = False) -> None:
    """:class:`~kdmri.errors.ConfigError` when an output would replace an input (see
    :func:`same_file`), or exists already and ``force`` is false. The keys name the
    options in the message (``{"--out": out}``, ``{"--input": scan}``)."""
    for out_name, out in outputs.items():
        for in_name, inp in inputs.items():
            if inp is not None and same_file(out, inp):
                raise ConfigError(f"{out_name} {out} is {in_name} {inp}: writing it would replace "
                                  "that input; choose another output path")
        if (Path(out).exists() or Path(out).is_symlink()) and not force:
            raise ConfigError(f"{out_name} {out}: the file exists; pass --force to replace it")


def atomic_text(path: Path | str, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_save(obj: Any, path: Path | str) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (checkpoints)."""
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
    return Path(path)


def write_csv(path: Path | str, rows: list[dict], fieldnames: list[str] | None = None) -> Path:
    """Write ``rows`` (dicts) as CSV atomically; columns in first-seen order unless given."""
    import csv

    if fieldnames is None:
        fieldnames = []
        for row in rows:
            fieldnames += [k for k in row if k not in fieldnames]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)
