"""What a prepared dataset and each of its volumes were made from.

``<out>/<dataset>/manifest.json`` (:func:`write_json_atomic`, :func:`read_manifest`) records
the whole conversion; its ``settings`` are compared between runs by :func:`comparable`.

Every ``.h5`` that ``prepare`` writes carries a ``conversion`` attribute (a JSON object,
:func:`volume_record`): every setting that changes the file's content (dataset, size, the
fit rule applied, the normalisation percentile, contrast, and the SHA-256 of each mask
applied, one per acceleration) and the identity of each source file it was read from
(path relative to ``--src``, size in bytes, modification time in ns, SHA-256).

A re-run recognises a volume as finished only when its record matches the run's
(:func:`compare_record`). The source check is *size and mtime first, hash when they
disagree*: when size and mtime both match, the source is taken as unchanged without
reading it (re-runs of a large download stay cheap); when only the mtime differs (the
download was copied without ``-p`` or re-extracted) the file is hashed and compared with
the recorded SHA-256, so identical bytes are still recognised and different bytes of the
same size are not; a different size is a different source.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py

from kdmri.data import FS_KEY
from kdmri.errors import DataError
from kdmri.io import atomic_text

RECORD_ATTR = "conversion"
RECORD_VERSION = 1
#: settings compared between a record and a run (``masks`` and ``sources`` are compared apart)
SETTING_KEYS = ("dataset", "size", "fit_applied", "percentile", "contrast")

FINISHED, REBUILD, DIFFERS = "finished", "rebuild", "differs"


def write_json_atomic(path: Path, payload: Mapping[str, object]) -> Path:
    """Write ``payload`` as JSON to ``path`` through :func:`kdmri.io.atomic_text`."""
    return atomic_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def read_manifest(path: Path) -> dict | None:
    """The manifest at ``path``, or None if there is none; DataError if it is unreadable."""
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc}); remove it or use "
                        "--overwrite") from exc


def comparable(settings: Mapping) -> dict:
    """Manifest settings as compared between runs: the applied fit, not the requested one
    (manifests of older kdmri versions recorded only ``fit``, already as applied)."""
    view = {k: v for k, v in settings.items() if k != "fit"}
    view.setdefault("fit_applied", applied_fit(str(settings.get("fit"))))
    return view


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    """SHA-256 of a file, read in blocks (sources can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def relative_source(path: Path, src: Path) -> str:
    """``path`` relative to the download folder ``src`` (links are not followed, so a folder
    of links to selected files records the links' names), else as given."""
    for a, b in ((path, src), (path.absolute(), src.absolute())):
        try:
            return a.relative_to(b).as_posix()
        except ValueError:
            pass
    return str(path)


def source_identity(path: Path, src: Path) -> dict:
    """``{path (relative to src), bytes, mtime_ns, sha256}`` of one source file."""
    stat = os.stat(path)
    return {"path": relative_source(path, src), "bytes": stat.st_size,
            "mtime_ns": stat.st_mtime_ns, "sha256": file_sha256(path)}


def applied_fit(fit: str) -> str:
    """The fit rule that writes the pixels: ``auto`` crops / pads exactly as ``crop-pad``
    (it only refuses more shapes), so both apply ``crop-pad``."""
    return "crop-pad" if fit == "auto" else fit


def volume_record(settings: Mapping[str, object], masks: Mapping[str, str],
                  sources: Sequence[dict]) -> dict:
    """The record stored in one volume: the content settings of the run
    (:func:`kdmri.datasets.convert.settings_record`), ``{acc: mask sha256}`` and the
    :func:`source_identity` of each source."""
    norm = settings["normalisation"]
    return {"record_version": RECORD_VERSION, "dataset": settings["dataset"],
            "size": list(settings["size"]), "fit_applied": settings["fit_applied"],
            "percentile": float(norm["divide_by_percentile"]), "contrast": settings["contrast"],
            "masks": dict(masks), "sources": [dict(s) for s in sources]}


def read_record(path: Path) -> dict | None:
    """The record of a prepared volume; None when there is none or the file is unreadable."""
    try:
        with h5py.File(path, "r") as fh:
            if FS_KEY not in fh or RECORD_ATTR not in fh.attrs:
                return None
            text = fh.attrs[RECORD_ATTR]
        return json.loads(text.decode() if isinstance(text, bytes) else text)
    except (OSError, ValueError):
        return None


def _source_change(recorded: dict, current: Path) -> str | None:
    """Why the source file ``current`` is not the one ``recorded``, or None if it is."""
    try:
        stat = os.stat(current)
    except OSError as exc:
        return f"source {recorded.get('path')} is unreadable ({exc.strerror})"
    if stat.st_size != recorded.get("bytes"):
        return (f"source {recorded.get('path')} changed ({recorded.get('bytes')} -> "
                f"{stat.st_size} bytes)")
    if stat.st_mtime_ns == recorded.get("mtime_ns"):
        return None
    if file_sha256(current) != recorded.get("sha256"):
        return f"source {recorded.get('path')} changed (same size, different content)"
    return None


def compare_record(record: dict | None, wanted: dict, sources: Sequence[Path],
                   src: Path) -> tuple[str, str]:
    """``(state, reason)`` of an existing volume against the run that would write it.

    ``wanted`` is :func:`volume_record` of the run (its ``sources`` are not used); ``sources``
    the files the run reads, below ``src``. ``FINISHED``: same settings, masks and sources,
    nothing to do. ``REBUILD``: only the set of accelerations differs (adding one rewrites
    the volume, no ``--overwrite`` needed). ``DIFFERS``: another setting, mask or source, or
    no record at all; ``reason`` says what.
    """
    if record is None:
        return DIFFERS, ("no conversion record (not written by this kdmri's prepare, or "
                         "unreadable)")
    changes = [f"{k} {record.get(k)!r} -> {wanted[k]!r}" for k in SETTING_KEYS
               if record.get(k) != wanted[k]]
    old_masks, new_masks = record.get("masks") or {}, wanted["masks"]
    changes += [f"mask {acc} changed" for acc in sorted(set(old_masks) & set(new_masks))
                if old_masks[acc] != new_masks[acc]]
    old_sources = record.get("sources") or []
    paths = [s.get("path") for s in old_sources]
    new_paths = [relative_source(p, src) for p in sources]
    if paths != new_paths:
        changes.append(f"sources {paths} -> {new_paths}")
    else:
        changes += [c for c in (_source_change(r, p) for r, p in zip(old_sources, sources)) if c]
    if changes:
        return DIFFERS, "; ".join(changes)
    if set(old_masks) != set(new_masks):
        return REBUILD, f"accelerations {sorted(old_masks)} -> {sorted(new_masks)}"
    return FINISHED, ""
