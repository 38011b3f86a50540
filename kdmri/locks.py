"""One file lock: processes that would write the same folder take turns.

:func:`folder_lock` holds an exclusive ``fcntl.flock`` on ``<folder>/.lock`` while its
block runs. A second process asking for the same lock waits (saying so on stderr) until
the first releases it -- also when the first dies, since the kernel drops the lock of a
closed file. Training takes it around a whole stage (:func:`kdmri.training.train`), so two
batch jobs that need one stage never train it at once: the second waits, then finds the
stage finished in ``model.pt`` and returns.

``flock`` locks belong to an open file, so two processes exclude each other but one
process may not take the lock twice (it would wait for itself). Where locking is not
available -- no ``fcntl`` (Windows), or a file system that refuses ``flock`` (Lustre
mounted without ``-o flock``) -- the block runs unlocked after a warning; on NFS, Linux
implements ``flock`` with NFS byte-range locks, which work across nodes -- unless the
mount keeps locks local to the node (NFS ``nolock`` or ``local_lock=flock|all``, Lustre
``localflock``): then the lock excludes only the processes of one node, and a warning
says so (docs/SCALING.md names the safe mount options).

The holder writes its pid, host and start time into the lock file. A waiter gives up
after ``KDMRI_LOCK_TIMEOUT`` seconds (default :data:`LOCK_TIMEOUT_S`; ``inf``: never) with
a :class:`~kdmri.errors.WaitTimeout` naming the lock file and its holder.
"""

from __future__ import annotations

import errno
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from kdmri.config_checks import env_number
from kdmri.errors import WaitTimeout

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".lock"
#: errno values of a file system that does not implement ``flock``.
UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOLCK}
#: How long a waiter waits for the holder (a whole stage may train for hours), unless the
#: environment variable :data:`LOCK_TIMEOUT_ENV` says otherwise.
LOCK_TIMEOUT_S = 24 * 3600.0
LOCK_TIMEOUT_ENV = "KDMRI_LOCK_TIMEOUT"
POLL_S = 1.0
#: Linux's table of mounts, read to warn about node-local locking.
MOUNTINFO = Path("/proc/self/mountinfo")
_warned_mounts: set[str] = set()


@contextmanager
def folder_lock(folder: Path | str, what: str = "", enabled: bool = True,
                timeout: float | None = None) -> Iterator[bool]:
    """Hold the exclusive lock ``<folder>/.lock`` (created, with ``folder``) for the block.

    Yields whether the lock is held (``False`` when ``enabled`` is false or locking is not
    available). ``what`` names the work in the messages; ``timeout``: seconds to wait for
    another holder (default: ``KDMRI_LOCK_TIMEOUT`` or :data:`LOCK_TIMEOUT_S`), then
    :class:`~kdmri.errors.WaitTimeout`.
    """
    if not enabled:
        yield False
        return
    folder = Path(folder)
    if fcntl is None:
        warnings.warn(f"{folder / LOCK_NAME}: file locking is not available on this platform (no "
                      "fcntl); running without the lock, so two processes could write this folder "
                      "at once", stacklevel=3)
        yield False
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    _warn_node_local(folder)
    if timeout is None:
        timeout = env_number(LOCK_TIMEOUT_ENV, LOCK_TIMEOUT_S, forever=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        held = _acquire(fd, path, what, timeout)
        try:
            yield held
        finally:
            if held:
                os.ftruncate(fd, 0)  # a lock file left behind names no finished process
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, what: str, timeout: float) -> bool:
    try:
        if not _try_lock(fd):
            print(f"waiting for {path}: held by {holder(path)}{f' ({what})' if what else ''}; "
                  f"giving up after {timeout:g} s ({LOCK_TIMEOUT_ENV})", file=sys.stderr, flush=True)
            if math.isinf(timeout):
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + timeout
                while not _try_lock(fd):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise WaitTimeout(
                            f"{path}: still held by {holder(path)} after {timeout:g} s of waiting"
                            f"{f' ({what})' if what else ''}; if that process is stuck, stop it "
                            f"(its lock goes with it), or set {LOCK_TIMEOUT_ENV} (seconds, inf: "
                            "no limit)")
                    time.sleep(min(POLL_S, left))
    except OSError as exc:
        if exc.errno not in UNSUPPORTED:
            raise
        warnings.warn(f"{path}: the file system does not support flock ({exc}); "
                      "running without the lock", stacklevel=4)
        return False
    # the holder's record is written in place: the lock belongs to this very file (a renamed
    # replacement would be another file, unlocked)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} since "
                  f"{datetime.now().isoformat(timespec='seconds')}{f', {what}' if what else ''}\n"
              .encode(), 0)
    return True


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def holder(path: Path) -> str:
    """Who holds the lock file ``path``, as its holder wrote it (pid, host, since when)."""
    try:
        text = Path(path).read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process (it has not written its pid yet)"


def node_local_locking(folder: Path, mountinfo: Path | None = None) -> str | None:
    """The mount options under which ``flock`` on ``folder`` excludes only the processes of
    one node (NFS ``nolock`` / ``local_lock=flock|all``, Lustre ``localflock``), or ``None``."""
    try:
        lines = (mountinfo or MOUNTINFO).read_text().splitlines()
    except OSError:
        return None
    target, best = str(Path(folder).resolve()), None
    for line in lines:
        head, _, tail = line.partition(" - ")
        fields, extra = head.split(), tail.split()
        if len(fields) < 6 or len(extra) < 3:
            continue
        point = fields[4].replace("\\040", " ")
        if (target == point or target.startswith(point.rstrip("/") + "/")) and (
                best is None or len(point) > len(best[0])):
            best = (point, extra[0], set(fields[5].split(",")) | set(extra[2].split(",")))
    if best is None:
        return None
    point, fstype, options = best
    local = sorted(options & {"nolock", "local_lock=flock", "local_lock=all", "localflock"})
    if local and (fstype.startswith("nfs") or fstype == "lustre"):
        return f"{point} is {fstype} mounted with {','.join(local)}"
    return None


def _warn_node_local(folder: Path) -> None:
    reason = node_local_locking(folder)
    if reason and reason not in _warned_mounts:
        _warned_mounts.add(reason)
        warnings.warn(f"{folder / LOCK_NAME}: {reason}, so its lock excludes only the processes of "
                      "this node: jobs on two nodes could train one stage at once (docs/SCALING.md "
                      "names the mount options that lock across nodes)", stacklevel=4)
