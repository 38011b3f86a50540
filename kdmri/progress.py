"""Progress bars: live where someone watches, a log file in batch-executed notebooks.

Every long loop of kdmri shows its progress through :func:`progress_bar`, a tqdm bar:

* interactively it is ``tqdm.auto`` (one updating widget in Jupyter, a text bar in a
  terminal);
* in a notebook executed by the batch runner (papermill), every bar update would be kept
  as its own output of the cell (hundreds per training cell). There the runner sets
  :data:`PROGRESS_LOG_ENV` for the kernel to the job's log file
  (``runs/<dataset>/acc_<acc>/<notebook>.log``), and the bars write plain, time-stamped
  lines to that file instead: one per epoch for a training stage, one every
  :data:`LOG_INTERVAL_S` seconds for a loop over batches. The notebook keeps only the one
  summary line each training stage prints when it ends.

``enabled=False`` (``progress: false`` in a params file) hides the bar in both cases.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

#: Environment variable naming the file progress bars write to instead of the notebook.
PROGRESS_LOG_ENV = "KDMRI_PROGRESS_LOG"
#: Seconds between two lines of a bar in the log (``per_update=True``: every update).
LOG_INTERVAL_S = 10.0


def progress_log() -> Path | None:
    """The log file progress goes to (:data:`PROGRESS_LOG_ENV`), ``None`` when unset."""
    value = os.environ.get(PROGRESS_LOG_ENV, "").strip()
    return Path(value) if value else None


class _LineLog:
    """A file-like object for tqdm: each state of the bar becomes one time-stamped line
    appended to ``path`` (tqdm's carriage returns and padding would make one endless line)."""

    encoding = "utf-8"

    def __init__(self, path: Path):
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, text: str) -> int:
        if self._fh.closed:
            return 0
        stamp = time.strftime("%H:%M:%S")
        for part in text.replace("\r", "\n").split("\n"):
            if part.strip():
                self._fh.write(f"[{stamp}] {part.rstrip()}\n")
        self._fh.flush()
        return len(text)

    def flush(self) -> None:
        if not self._fh.closed:
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _log_bar_class():
    from tqdm.std import tqdm as std_tqdm

    class LogBar(std_tqdm):
        """A text bar writing to a :class:`_LineLog`, which it closes with itself."""

        def close(self) -> None:
            try:
                super().close()
            finally:
                if getattr(self, "fp", None) is not None:
                    self.fp.close()

    return LogBar


def progress_bar(iterable=None, *, enabled: bool = True, per_update: bool = False, **kwargs: Any):
    """A tqdm bar over ``iterable`` (or updated by hand): ``tqdm.auto`` unless
    :data:`PROGRESS_LOG_ENV` names a log file, then a bar writing lines to that file (every
    update with ``per_update``, else at most one line per :data:`LOG_INTERVAL_S` seconds).
    ``kwargs`` go to tqdm (``desc``, ``total``, ``initial``, ``unit``, ...)."""
    path = progress_log() if enabled else None
    if path is None:
        from tqdm.auto import tqdm

        return tqdm(iterable, disable=not enabled, **kwargs)
    # disable=False explicitly: it wins over TQDM_DISABLE, which batch-executed kernels have
    kwargs.update(disable=False, leave=True, ascii=True, ncols=100, dynamic_ncols=False,
                  mininterval=0.0 if per_update else LOG_INTERVAL_S, miniters=1 if per_update else None)
    return _log_bar_class()(iterable, file=_LineLog(path), **kwargs)
