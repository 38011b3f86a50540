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
implements ``flock`` with NFS byte-range locks, which work across nodes.
"""

from __future__ import annotations

import errno
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".lock"
#: errno values of a file system that does not implement ``flock``.
UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOLCK}


@contextmanager
def folder_lock(folder: Path | str, what: str = "", enabled: bool = True) -> Iterator[bool]:
    """Hold the exclusive lock ``<folder>/.lock`` (created, with ``folder``) for the block.

    Yields whether the lock is held (``False`` when ``enabled`` is false or locking is not
    available). ``what`` names the work in the waiting message.
    """
    if not enabled or fcntl is None:
        yield False
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        held = _acquire(fd, path, what)
        try:
            yield held
        finally:
            if held:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, what: str) -> bool:
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {path}: another process holds it{f' ({what})' if what else ''}",
                  file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        if exc.errno not in UNSUPPORTED:
            raise
        warnings.warn(f"{path}: the file system does not support flock ({exc}); "
                      "running without the lock", stacklevel=4)
        return False
    return True
