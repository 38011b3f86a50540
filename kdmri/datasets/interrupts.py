"""SIGINT and SIGTERM during a conversion: stop at a safe point, never half-way.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens to
be; raised inside a destructor or a callback it is printed as "Exception ignored in ..."
and lost, and the run goes on to exit 0. SIGTERM kills the process outright, leaving
finished volumes and a ``.tmp`` without a manifest. While a conversion writes,
:func:`deferred` replaces both handlers by one that only *records* the signal; the
driver calls :meth:`Guard.check` between volumes and before the manifest and the swap,
which raises :class:`Interrupted`; the driver's clean-up then removes what the run wrote
(or its staging copy), so the earlier state is as it was. ``prepare`` exits with
``128 + signal number`` (130 for SIGINT, 143 for SIGTERM) after one ``error:`` line.

Before anything is written (e.g. while waiting for the output's lock) the handler raises
:class:`Interrupted` at once (``Guard.immediate``). Outside the main thread signal handlers
cannot be installed and the guard records nothing (the caller's handlers stay).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from kdmri.errors import KDMRIError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KDMRIError):
    """The conversion was stopped by a signal; ``signum`` says which."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


class Guard:
    """Records SIGINT / SIGTERM (see module doc); :meth:`check` raises once one arrived."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.received: int | None = None
        self.immediate = True

    def _error(self, signum: int) -> Interrupted:
        return Interrupted(signum, f"{self.what}: interrupted by {signal.Signals(signum).name}; "
                                   "stopped before completing it, the output is as it was "
                                   "before this run")

    def handle(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signum
        if self.immediate:
            raise self._error(signum)

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal arrived since the guard was installed."""
        if self.received is not None:
            raise self._error(self.received)


@contextmanager
def deferred(what: str) -> Iterator[Guard]:
    """Install the :class:`Guard`'s handler for SIGINT and SIGTERM for the block (main
    thread only), then put the previous handlers back."""
    guard = Guard(what)
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    previous = {s: signal.signal(s, guard.handle) for s in SIGNALS}
    try:
        yield guard
    finally:
        for s, handler in previous.items():
            if handler is not None:  # None: a handler installed outside Python, kept as is
                signal.signal(s, handler)
