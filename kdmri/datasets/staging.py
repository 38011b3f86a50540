"""Replacing a prepared dataset without ever losing it.

A run that would change files of an existing ``<out>/<dataset>/`` (``--overwrite``, or a
re-run that must rewrite a volume) builds the new dataset beside it in
``<out>/<dataset>.partial-<host>-<pid>/`` and swaps it in only once it is complete: the old
folder is renamed to ``<out>/<dataset>.old-<host>-<pid>/``, the new one renamed into place,
the old one deleted. A failure before the swap deletes the partial folder and leaves the
old dataset byte for byte as it was. If the process dies between the two renames, the next
run puts the old folder back (:func:`recover_interrupted`).

The folders are named with the host as well as the pid because ``<out>`` may be shared
between machines (NFS): a pid says whether a process runs only on its own host, so a run
only ever cleans up or restores folders of its own host whose process is dead. Folders of
other hosts, of live processes, and the older ``<dataset>.partial-<pid>`` names (host
unknown) are left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
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


def host_tag() -> str:
    """This machine's name as used in staging folder names (characters other than letters,
    digits, ``.``, ``_`` and ``-`` replaced by ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"


def _name(dataset: str, kind: str) -> str:
    return f"{dataset}.{kind}-{host_tag()}-{os.getpid()}"


def _leftovers(out: Path, dataset: str, kind: str) -> list[tuple[Path, str | None, int]]:
    """``(folder, host or None for the old pid-only names, pid)`` of each staging folder."""
    found = []
    prefix = f"{dataset}.{kind}-"
    for path in sorted(out.glob(f"{dataset}.{kind}-*")):
        rest = path.name[len(prefix):]
        host, _, pid = rest.rpartition("-")
        if path.is_dir() and pid.isdigit():
            found.append((path, host or None, int(pid)))
    return found


def _ours_and_dead(host: str | None, pid: int) -> bool:
    return host == host_tag() and not _pid_alive(pid)


def recover_interrupted(out: Path, dataset: str) -> None:
    """Undo what a killed run of this host left: restore ``<dataset>.old-<host>-<pid>`` when
    ``<dataset>/`` is missing, delete its partial and old folders. :class:`DataError` when
    ``<dataset>/`` is missing and an old folder of another host or of a live process exists
    (that run is swapping it in, or died on another machine: only it knows)."""
    root = out / dataset
    for path, host, pid in _leftovers(out, dataset, OLD):
        if not _ours_and_dead(host, pid):
            if not root.exists():
                raise DataError(f"{path}: {root} is missing and this copy of it belongs to "
                                f"process {pid} on host {host or '?'}, which may still be "
                                f"replacing it; once that process has ended, rename it back "
                                f"to {root.name} (or delete it) and run again")
            continue
        if not root.exists():
            path.rename(root)
        else:
            shutil.rmtree(path, ignore_errors=True)
    for path, host, pid in _leftovers(out, dataset, PARTIAL):
        if _ours_and_dead(host, pid):
            shutil.rmtree(path, ignore_errors=True)


def stage_folder(out: Path, dataset: str) -> Path:
    """A fresh, empty ``<out>/<dataset>.partial-<host>-<pid>/``."""
    stage = out / _name(dataset, PARTIAL)
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
    old = root.with_name(_name(root.name, OLD))
    if old.exists():
        shutil.rmtree(old)
    root.rename(old)
    try:
        stage.rename(root)
    except BaseException:
        old.rename(root)
        raise
    shutil.rmtree(old, ignore_errors=True)
