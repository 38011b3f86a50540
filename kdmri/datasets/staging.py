"""Replacing a prepared dataset without ever losing it.

A run that would change files of an existing ``<out>/<dataset>/`` (``--overwrite``, or a
re-run that must rewrite an unfinished volume) builds the new dataset beside it in
``<out>/<dataset>.partial-<pid>/`` and swaps it in only once it is complete: the old folder
is renamed to ``<out>/<dataset>.old-<pid>/``, the new one renamed into place, the old one
deleted. A failure before the swap deletes the partial folder and leaves the old dataset
byte for byte as it was. If the process dies between the two renames, the next run puts
the old folder back (:func:`recover_interrupted`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kdmri.errors import DataError
from kdmri.io import TMP_SUFFIX

PARTIAL = "partial"
OLD = "old"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _leftovers(out: Path, dataset: str, kind: str) -> list[tuple[Path, int]]:
    found = []
    for path in sorted(out.glob(f"{dataset}.{kind}-*")):
        pid = path.name.rsplit("-", 1)[1]
        if path.is_dir() and pid.isdigit():
            found.append((path, int(pid)))
    return found


def recover_interrupted(out: Path, dataset: str) -> None:
    """Undo what a killed run left: restore ``<dataset>.old-<pid>`` when ``<dataset>/`` is
    missing, delete partial and old folders of processes that no longer run."""
    root = out / dataset
    for path, pid in _leftovers(out, dataset, OLD):
        if _pid_alive(pid):
            continue
        if not root.exists():
            path.rename(root)
        else:
            shutil.rmtree(path, ignore_errors=True)
    for path, pid in _leftovers(out, dataset, PARTIAL):
        if not _pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def stage_folder(out: Path, dataset: str) -> Path:
    """A fresh, empty ``<out>/<dataset>.partial-<pid>/``."""
    stage = out / f"{dataset}.{PARTIAL}-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    return stage


def has_files(root: Path) -> bool:
    """True when ``root`` holds any file other than an interrupted writer's ``*.tmp``."""
    return root.is_dir() and any(p.is_file() and not p.name.endswith(TMP_SUFFIX)
                                 for p in root.rglob("*"))


def check_replaceable(root: Path, ours: set[Path]) -> None:
    """:class:`DataError` naming the first file in ``root`` that a swap would delete but that
    kdmri did not write (not in ``ours``, not a ``*.tmp``)."""
    foreign = sorted(p for p in root.rglob("*") if p.is_file() and p not in ours
                     and not p.name.endswith(TMP_SUFFIX))
    if foreign:
        raise DataError(f"{foreign[0]}: file in {root} that no kdmri run recorded "
                        f"({len(foreign)} such file(s)); replacing the dataset would delete it: "
                        "move it away, or choose another --out")


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (no data copied; the old file is never modified), or copy
    it where the file system has no hard links."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def swap_in(stage: Path, root: Path) -> None:
    """Replace ``root`` by the complete ``stage`` (two renames), then delete the old one."""
    if not root.exists():
        stage.rename(root)
        return
    old = root.with_name(f"{root.name}.{OLD}-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    root.rename(old)
    try:
        stage.rename(root)
    except BaseException:
        old.rename(root)
        raise
    shutil.rmtree(old, ignore_errors=True)
