"""The job graph of a batch: which notebook runs after which, and running a graph.

:data:`NOTEBOOK_DEPENDS` is the table, read from what each notebook trains and loads:

==========================  =======================  ============================================
notebook                    runs after               why
==========================  =======================  ============================================
``00_data``                 --                       builds / checks the dataset (``nb.ensure_data``)
``01_masks``                00                       reads a validation slice
``02_dc_cnn``               00                       untrained networks on a validation slice
``03_teacher_student``      00                       trains ``teacher`` and ``student``
``04_kd_mri``               03                       loads 03's teacher and student; trains
                                                     ``feature``, ``kd``
``05_sft_kd``               03                       distils from 03's teacher; trains
                                                     ``sft-teacher`` and the std-/sft- grid
``06_super_resolution``     00                       its own ``sr-*`` stages (VDSR); nothing of 03
``07_ablations``            03                       03's teacher; the ``abl-*`` variants
``08_results``              01, 02, 04, 05, 06, 07   tabulates everything the others wrote
``09_distil_your_network``  00                       its own U-Net teacher (``unet_teacher``),
                                                     distils ``unet_student``; trains (or
                                                     reuses) the plain ``student``
==========================  =======================  ============================================

Dependencies are within one params file; a listed notebook that is not in the batch is
replaced by its own dependencies, and only the direct edges are kept (08 -> 04 implies
08 -> 03). A notebook missing from the table runs after every earlier notebook of its
params file (the plain numeric order). Two params files whose dataset folder does not exist
yet (the demo dataset, built on first use) would build it at once: the first jobs of the
later one wait for the first jobs of the earlier one.

:func:`schedule` runs a graph with ``slots`` jobs at a time, in plan order as far as the
dependencies allow; a job whose dependency failed is not run (SLURM's ``afterok``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: notebook stem -> the notebooks (stems) it needs to have run first, same params file.
NOTEBOOK_DEPENDS: dict[str, tuple[str, ...]] = {
    "00_data": (),
    "01_masks": ("00_data",),
    "02_dc_cnn": ("00_data",),
    "03_teacher_student": ("00_data",),
    "04_kd_mri": ("03_teacher_student",),
    "05_sft_kd": ("03_teacher_student",),
    "06_super_resolution": ("00_data",),
    "07_ablations": ("03_teacher_student",),
    "08_results": ("01_masks", "02_dc_cnn", "04_kd_mri", "05_sft_kd", "06_super_resolution",
                   "07_ablations"),
    "09_distil_your_network": ("00_data",),
}


def _closure(stem: str, table: dict[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    todo = list(table.get(stem, ()))
    while todo:
        s = todo.pop()
        if s not in seen:
            seen.add(s)
            todo += table.get(s, ())
    return seen


def notebook_edges(stems: Sequence[str],
                   table: dict[str, tuple[str, ...]] | None = None) -> list[list[int]]:
    """For notebooks ``stems`` (plan order, one params file): the indices each one needs."""
    table = NOTEBOOK_DEPENDS if table is None else table
    index = {s: i for i, s in enumerate(stems)}
    full: list[set[int]] = []
    for i, stem in enumerate(stems):
        if stem in table:
            full.append({index[s] for s in _closure(stem, table) if s in index and index[s] != i})
        else:
            full.append(set(range(i)))
    # keep the edges not implied by another dependency
    return [sorted(d for d in deps if not any(d in full[e] for e in deps if e != d)) for deps in full]


def job_edges(groups: Sequence[tuple[Any, Path, Sequence[str]]],
              table: dict[str, tuple[str, ...]] | None = None) -> list[list[int]]:
    """Edges of a whole batch. ``groups``: per params file, in plan order, ``(key, data
    folder, notebook stems)``; jobs are numbered through the groups in that order."""
    edges: list[list[int]] = []
    first_jobs: dict[Path, list[int]] = {}
    offset = 0
    for _, data_folder, stems in groups:
        local = notebook_edges(stems, table)
        roots = [offset + i for i, d in enumerate(local) if not d]
        earlier = first_jobs.get(Path(data_folder)) if not Path(data_folder).is_dir() else None
        for deps in local:
            edges.append([offset + d for d in deps] + (earlier if earlier and not deps else []))
        first_jobs.setdefault(Path(data_folder), roots)
        offset += len(stems)
    return edges


def schedule(n: int, edges: Sequence[Sequence[int]], slots: int,
             start: Callable[[int], Callable[[], Any]], ok: Callable[[Any], bool],
             skipped: Callable[[int, list[int]], Any], done: Callable[[int, Any], None] | None = None,
             poll_s: float = 0.2) -> list[Any]:
    """Run jobs ``0..n-1`` honouring ``edges``, at most ``slots`` at once.

    ``start(i)`` launches job ``i`` and returns ``poll()``, which returns its result once
    finished (else ``None``); ``ok(result)`` says whether dependants may run;
    ``skipped(i, failed)`` is the result of a job not run because jobs ``failed`` did not
    succeed; ``done(i, result)`` is called as each result arrives.
    """
    if any(d >= i for i, deps in enumerate(edges) for d in deps):
        raise ValueError("job graph: a job may only depend on jobs planned before it")
    results: dict[int, Any] = {}
    running: dict[int, Callable[[], Any]] = {}
    pending = list(range(n))

    def finish(i: int, result: Any) -> None:
        results[i] = result
        if done is not None:
            done(i, result)

    while pending or running:
        progressed = False
        for i, poll in list(running.items()):
            result = poll()
            if result is not None:
                del running[i]
                finish(i, result)
                progressed = True
        for i in list(pending):
            failed = [d for d in edges[i] if d in results and not ok(results[d])]
            if failed:
                pending.remove(i)
                finish(i, skipped(i, failed))
                progressed = True
            elif len(running) < slots and all(d in results for d in edges[i]):
                pending.remove(i)
                running[i] = start(i)
                progressed = True
        if running and not progressed:
            time.sleep(poll_s)
    return [results[i] for i in range(n)]
