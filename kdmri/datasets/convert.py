"""Shared machinery of the dataset converters: fit, normalise, split, write, manifest.

Every converter (:mod:`.acdc`, :mod:`.mrbrains`, :mod:`.fastmri_knee`, :mod:`.calgary`)
only *finds* the volumes of a download and says how to *load* each one as a native-size
``(H, W, slices)`` array; everything else happens here, identically for every dataset:

1. **check** the source folder, then every source file's name and header (before any
   output is written, so most bad inputs fail fast and leave nothing behind);
2. **fit** each slice to the target size ``(H, W)``: centred crop where the image is larger,
   centred zero padding where it is smaller, per axis (:func:`fit_to_size`). With
   ``fit="auto"`` (the default) a shape that cannot be the dataset's real layout (the
   spec's ``check_layout``: a CC-359 volume stored slices-last, knee k-space without 640
   rows...) is an error; ``fit="crop-pad"`` fits any shape; ``fit="strict"`` fits none;
3. **normalise** each volume to [0, 1] (:func:`normalise_volume`): negative values are set
   to 0, then the volume is divided by its maximum (``percentile=100``, the default) or by
   its ``percentile``-th percentile and clipped at 1;
4. **split** by subject (:func:`split_subjects`): a seeded shuffle of the sorted subject ids,
   ``round(val_fraction * n)`` of them to validation; or the download's official split;
5. **write** ``<out>/<dataset>/{train,validation}/<volume>.h5`` through
   :func:`kdmri.data.write_volume` with the committed masks and a conversion record
   (:mod:`.records`), skipping volumes whose record matches this run (settings, masks,
   sources); a volume prepared differently stops the run unless ``overwrite``. On any error,
   or SIGINT / SIGTERM (:mod:`.interrupts`), the volumes written by this run are removed.
   A run that would change an existing dataset builds the new one beside it and swaps it in
   when complete (:mod:`.staging`), so a failure leaves the old dataset as it was. The run
   holds the lock :func:`lock_folder` on its output throughout;
6. **record** ``<out>/<dataset>/manifest.json`` (atomically) once every volume is in place.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from kdmri.data import write_volume
from kdmri.data.fit_size import fit_action, fit_to_size
from kdmri.datasets import interrupts, records, staging
from kdmri.datasets.registry import DatasetSpec, get_dataset
from kdmri.datasets.rules import normalise_volume, split_subjects
from kdmri.datasets.sources import SourceVolume, check_finite
from kdmri.errors import ConfigError, DataError
from kdmri.io import TMP_SUFFIX
from kdmri.locks import folder_lock
from kdmri.paths import acc_tag, datasets_dir, mask_path, project_relative, project_root
from kdmri.physics.masks import load_dataset_mask

SPLITS = ("train", "validation")
FIT_MODES = ("auto", "crop-pad", "strict")
SPLIT_MODES = ("seeded", "official")
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class PrepareOptions:
    """Settings of one conversion (the CLI flags of ``python -m kdmri prepare``).

    Attributes:
        accs: accelerations whose masks are applied (``"4x"``...); one file holds them all.
        size: target slice size ``(H, W)``; ``None`` = the dataset's reference size
            (its :class:`~kdmri.datasets.registry.DatasetSpec`). Another size needs
            ``masks_root`` holding masks of that size.
        fit: ``"auto"`` (centred crop / zero pad to ``size``, but a shape that cannot be the
            dataset's real layout is an error), ``"crop-pad"`` (fit any shape) or
            ``"strict"`` (any size mismatch is an error).
        percentile: normalisation divisor: 100 = volume maximum, else that percentile.
        split: ``"seeded"`` (shuffle subjects with ``seed``) or ``"official"``.
        val_fraction: fraction of subjects sent to validation by the seeded split (at least
            one and at most all but one subject when strictly between 0 and 1; 0 puts every
            subject in train, 1 every subject in validation).
        seed: seed of the seeded split.
        contrast: MRBrainS contrast (``T1``, ``T1_IR``, ``T2_FLAIR``); ``None`` elsewhere.
        overwrite: rewrite finished volumes and replace a dataset prepared differently.
        masks_root: folder holding ``<dataset>/mask_<acc>.npy`` (default: ``us_masks/``).
        progress: show a progress bar.
    """

    accs: tuple[str, ...] = ("4x", "5x", "8x")
    size: tuple[int, int] | None = None
    fit: str = "auto"
    percentile: float = 100.0
    split: str = "seeded"
    val_fraction: float = 0.2
    seed: int = 0
    contrast: str | None = None
    overwrite: bool = False
    masks_root: Path | None = None
    progress: bool = True


@dataclass
class PrepareReport:
    """What :func:`run_conversion` did."""

    dataset: str
    out_dir: Path
    manifest: Path
    written: list[str]
    skipped: list[str]
    slices: dict[str, int]
    subjects: dict[str, int]
    volumes: dict[str, int]

    def summary(self) -> str:
        """One human-readable paragraph for the CLI: where the dataset is (absolute path)
        and, when it is not the default ``datasets/<dataset>``, the ``data_root`` a params
        file needs to find it (params paths are relative to the project root)."""
        parts = [f"{split}: {self.subjects[split]} subjects, {self.volumes[split]} volumes, "
                 f"{self.slices[split]} slices" for split in SPLITS]
        root = self.out_dir.resolve()
        if root != (datasets_dir() / self.dataset).resolve():
            parts.append(f"params: set data_root: {project_relative(root)} (params paths are "
                         "relative to the project root)")
        return (f"{self.dataset}: wrote {len(self.written)} volume(s), skipped "
                f"{len(self.skipped)} already finished -> {root}\n  "
                + "\n  ".join(parts) + f"\n  manifest: {self.manifest.resolve()}")


# ----------------------------------------------------------------------------- helpers



def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- driver


def validate_options(spec: DatasetSpec, options: PrepareOptions
                     ) -> tuple[tuple[int, int], tuple[str, ...]]:
    """Check ``options``; return the target size and the normalised acc tags."""
    if options.fit not in FIT_MODES:
        raise ConfigError(f"fit={options.fit!r}: expected one of {list(FIT_MODES)}")
    if options.split not in SPLIT_MODES:
        raise ConfigError(f"split={options.split!r}: expected one of {list(SPLIT_MODES)}")
    if not 0.0 < options.percentile <= 100.0:
        raise ConfigError(f"percentile={options.percentile}: expected a value in (0, 100]")
    if not 0.0 <= options.val_fraction <= 1.0:
        raise ConfigError(f"val_fraction={options.val_fraction}: expected a fraction in [0, 1]")
    if not options.accs:
        raise ConfigError("accs: expected at least one acceleration such as 4x")
    accs = tuple(dict.fromkeys(acc_tag(a) for a in options.accs))
    size = tuple(options.size) if options.size is not None else spec.shape
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"size={options.size}: expected two positive integers H W")
    return (int(size[0]), int(size[1])), accs


def settings_record(dataset: str, options: PrepareOptions, size: tuple[int, int]) -> dict:
    """The settings that define a prepared dataset (compared between runs): ``fit`` is the
    requested mode, ``fit_applied`` the rule that wrote the pixels (``auto`` crops / pads
    exactly as ``crop-pad``, it only refuses more shapes)."""
    return {
        "dataset": dataset,
        "size": list(size),
        "fit": options.fit,
        "fit_applied": records.applied_fit(options.fit),
        "normalisation": {"negative_to_zero": True, "divide_by_percentile": options.percentile,
                          "clip_to": [0.0, 1.0]},
        "split": options.split,
        "val_fraction": options.val_fraction if options.split == "seeded" else None,
        "seed": options.seed if options.split == "seeded" else None,
        "contrast": options.contrast,
    }


def check_shapes(spec: DatasetSpec, volumes: Sequence[SourceVolume], size: tuple[int, int],
                 fit: str) -> None:
    """:class:`DataError` for a size mismatch under ``strict``, or under ``auto`` for a shape
    that the spec's ``check_layout`` says cannot be the dataset's real layout."""
    for v in volumes:
        if fit == "strict" and tuple(v.shape[:2]) != size:
            raise DataError(f"{v.sources[0]}: image size {tuple(v.shape[:2])} differs from "
                            f"the target {size} (fit=strict; use --fit crop-pad to centre-"
                            "crop / zero-pad)")
        problem = spec.check_layout(tuple(v.shape), size) if (
            fit == "auto" and spec.check_layout is not None) else None
        if problem:
            raise DataError(f"{v.sources[0]}: {problem}; this is not the {spec.title} layout. "
                            f"If it really holds {spec.name} images, --fit crop-pad centre-crops "
                            f"/ zero-pads them to {size[0]} x {size[1]}")


def assign_splits(spec: DatasetSpec, volumes: Sequence[SourceVolume],
                  options: PrepareOptions) -> dict[str, str]:
    """``{volume name: split}``: seeded by subject, or the download's official split (which
    must give both splits at least one volume)."""
    dataset = spec.name
    if options.split != "official":
        subject_split = split_subjects((v.subject for v in volumes), options.val_fraction,
                                       options.seed)
        return {v.name: subject_split[v.subject] for v in volumes}
    missing = [v for v in volumes if v.official_split is None]
    if missing:
        raise DataError(f"{missing[0].sources[0]}: not in an official split folder of the "
                        f"{dataset} download; use --split seeded (see docs/DATASETS.md)")
    by_subject: dict[str, set[str]] = {}
    for v in volumes:
        by_subject.setdefault(v.subject, set()).add(v.official_split)
    mixed = [s for s, splits in by_subject.items() if len(splits) > 1]
    if mixed:
        raise DataError(f"subject {mixed[0]} appears in both official splits of {dataset}; "
                        "use --split seeded")
    for split in SPLITS:
        if not any(v.official_split == split for v in volumes):
            folders = [f"{k}/" for k, s in (spec.official_split or {}).items() if s == split]
            found = sorted({v.sources[0].parent.parent.name + "/" for v in volumes})
            raise DataError(f"--split official: the {split!r} split of {dataset} is empty (its "
                            f"folder {' or '.join(folders) or '?'} holds no volume); found "
                            f"{len(volumes)} volume(s), all in {', '.join(found)}. Add that "
                            "folder to --src or use --split seeded")
    return {v.name: v.official_split for v in volumes}


def lock_folder(out: Path, dataset: str) -> Path:
    """The folder whose :func:`kdmri.locks.folder_lock` a conversion of ``dataset`` into
    ``out`` holds (beside the dataset, since the dataset folder itself is swapped)."""
    return out / ".locks" / dataset


def run_conversion(dataset: str, src: Path, out: Path, volumes: Sequence[SourceVolume],
                   options: PrepareOptions, guard: interrupts.Guard | None = None
                   ) -> PrepareReport:
    """Fit, normalise, split and write ``volumes``; then write the manifest.

    Holds the lock :func:`lock_folder` while it changes ``out`` (a second conversion of the
    same dataset into the same folder waits), and stops cleanly on SIGINT / SIGTERM
    (:mod:`.interrupts`: :class:`~kdmri.datasets.interrupts.Interrupted`, earlier state intact).

    Args:
        dataset: a registered dataset name (names the mask folder and the output folder).
        src: the download folder (recorded in the manifest, paths stored relative to it).
        out: the datasets folder; volumes go to ``out/<dataset>/<split>/<name>.h5``.
        volumes: what the dataset's ``discover`` found.
        options: see :class:`PrepareOptions`.
        guard: an installed :class:`~kdmri.datasets.interrupts.Guard` (``prepare`` installs
            one before it reads the download); None installs one here.
    """
    if guard is None:
        with interrupts.deferred(f"prepare {dataset}") as guard:
            return run_conversion(dataset, src, out, volumes, options, guard)
    spec = get_dataset(dataset)
    size, accs = validate_options(spec, options)
    if not volumes:
        raise DataError(f"{src}: no {dataset} volumes found")
    names = [v.name for v in volumes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        clash = [str(v.sources[0]) for v in volumes if v.name == dupes[0]]
        raise DataError(f"{dupes[0]}: two source volumes map to the same output name "
                        f"({', '.join(clash)}); keep one copy of each subject in --src")
    split_of = assign_splits(spec, volumes, options)
    check_shapes(spec, volumes, size, options.fit)

    masks, mask_files = {}, {}
    for tag in accs:
        masks[tag] = load_dataset_mask(dataset, tag, size, root=options.masks_root)
        path = mask_path(dataset, tag, options.masks_root)
        mask_files[tag] = {"path": _relative(path, project_root()),
                           "sha256": records.file_sha256(path)}
    what = f"prepare {dataset} into {(out / dataset).resolve()}"
    guard.what = what
    with folder_lock(lock_folder(out, dataset), what=what):
        guard.immediate = False  # from here on, stop only at the guard's checks
        try:
            guard.check()  # a signal swallowed before the lock was held
            return _convert(dataset, src, out, volumes, options, size, split_of, masks,
                            mask_files, guard)
        finally:
            guard.immediate = True


def _existing_states(root: Path, src: Path, volumes: Sequence[SourceVolume],
                     split_of: Mapping[str, str], wanted: dict) -> dict[Path, str]:
    """``{existing volume: FINISHED or REBUILD}``; :class:`DataError` naming the first one
    whose settings, masks or sources differ from this run's (see :mod:`.records`)."""
    states, differ = {}, []
    for v in volumes:
        final = root / split_of[v.name] / f"{v.name}.h5"
        if final.exists():
            state, why = records.compare_record(records.read_record(final), wanted,
                                                v.sources, src)
            states[final] = state
            if state == records.DIFFERS:
                differ.append((final, why))
    if differ:
        raise DataError(f"{differ[0][0]}: already prepared differently: {differ[0][1]} "
                        f"({len(differ)} such volume(s)); use --overwrite to rebuild them, or "
                        "another --out")
    return states


def _convert(dataset: str, src: Path, out: Path, volumes: Sequence[SourceVolume],
             options: PrepareOptions, size: tuple[int, int], split_of: Mapping[str, str],
             masks: Mapping[str, np.ndarray], mask_files: Mapping[str, dict],
             guard: interrupts.Guard) -> PrepareReport:
    """:func:`run_conversion` once the output's lock is held."""
    from tqdm.auto import tqdm

    from kdmri import __version__

    accs = tuple(masks)
    staging.recover_interrupted(out, dataset)
    root = out / dataset
    manifest_path = root / MANIFEST_NAME
    settings = settings_record(dataset, options, size)
    old = records.read_manifest(manifest_path)
    before, now = records.comparable((old or {}).get("settings") or {}), records.comparable(settings)
    if old is not None and not options.overwrite and before != now:
        changed = sorted(k for k in now if before.get(k) != now[k])
        raise DataError(f"{manifest_path}: {dataset} was already prepared with different "
                        f"settings ({', '.join(changed)}); use --overwrite to replace it, or "
                        "another --out")

    planned = {root / split_of[v.name] / f"{v.name}.h5" for v in volumes}
    recorded = {root / e["split"] / e["file"] for e in (old or {}).get("volumes", [])
                if isinstance(e, dict) and "split" in e and "file" in e}
    for v in volumes:  # one volume must never sit in both splits
        other = "train" if split_of[v.name] == "validation" else "validation"
        if (root / other / f"{v.name}.h5").exists() and not options.overwrite:
            raise DataError(f"{root / other / f'{v.name}.h5'}: this volume now belongs to "
                            f"'{split_of[v.name]}' (the split changed); use --overwrite to move it")
    known = planned | (recorded if options.overwrite else set())
    strays = sorted(p for split in SPLITS if (root / split).is_dir()
                    for p in (root / split).glob("*.h5") if p not in known)
    if strays:
        raise DataError(f"{strays[0]}: volume in the output folder that this conversion does not "
                        f"produce ({len(strays)} such file(s)); remove them, or use --overwrite if "
                        "a previous kdmri run wrote them, or choose another --out")

    mask_sums = {tag: mask_files[tag]["sha256"] for tag in accs}
    wanted = records.volume_record(settings, mask_sums, [])
    states = {} if options.overwrite else _existing_states(root, src, volumes, split_of, wanted)
    finished = {p for p, state in states.items() if state == records.FINISHED}
    # an existing dataset is never changed in place: the new one is built beside it
    staged = staging.has_files(root) and (
        options.overwrite or any(p.exists() for p in planned - finished))
    if staged:
        staging.check_replaceable(root, planned | recorded | {manifest_path})
        dest = staging.stage_folder(out, dataset)
    else:
        dest = root
        for split in SPLITS:  # leftovers of an interrupted writer are ours and never complete
            if (root / split).is_dir():
                for tmp in (root / split).glob(f"*{TMP_SUFFIX}"):
                    tmp.unlink()
    new_dirs = [d for d in (root, root / "train", root / "validation") if not d.exists()]
    written: list[str] = []
    written_paths: list[Path] = []
    skipped: list[str] = []
    entries: list[dict] = []
    try:
        for v in tqdm(volumes, desc=f"prepare {dataset}", unit="vol", disable=not options.progress):
            guard.check()
            split = split_of[v.name]
            final = root / split / f"{v.name}.h5"
            target = dest / split / f"{v.name}.h5"
            entry = {
                "name": v.name, "file": target.name, "split": split, "subject": v.subject,
                "sources": [records.relative_source(p, src) for p in v.sources],
                "source_shape": list(v.shape), "fit": fit_action(v.shape, size),
                "slices": int(v.shape[2]), **{k: _plain(x) for k, x in v.attrs.items()},
            }
            if final in finished:
                if staged:
                    staging.link_or_copy(final, target)
                skipped.append(v.name)
                entry["status"] = "skipped (already finished)"
                entries.append(entry)
                continue
            identities = [records.source_identity(p, src) for p in v.sources]
            native = np.asarray(v.load())
            if native.ndim != 3 or np.iscomplexobj(native):
                raise DataError(f"{v.sources[0]}: expected a real (H, W, slices) image, got "
                                f"{native.dtype} {native.shape}")
            check_finite(native, v.sources[0])
            fitted = fit_to_size(native, size)
            volfs, scale = normalise_volume(fitted, options.percentile, v.sources[0])
            guard.check()
            attrs = {"dataset": dataset, "subject": v.subject, "split": split,
                     "source": entry["sources"][0], "source_shape": list(v.shape),
                     "fit": entry["fit"], "normalisation_divisor": scale,
                     "normalisation_percentile": options.percentile, "kdmri_version": __version__,
                     records.RECORD_ATTR: json.dumps(
                         records.volume_record(settings, mask_sums, identities))}
            attrs.update({k: _plain(x) for k, x in v.attrs.items() if x is not None})
            write_volume(target, volfs, masks, attrs)
            written_paths.append(target)
            written.append(v.name)
            entry["status"] = "written"
            entry["normalisation_divisor"] = scale
            entries.append(entry)

        totals = {s: {"subjects": len({e["subject"] for e in entries if e["split"] == s}),
                      "volumes": sum(e["split"] == s for e in entries),
                      "slices": sum(e["slices"] for e in entries if e["split"] == s)}
                  for s in SPLITS}
        manifest = {
            "dataset": dataset,
            "kdmri_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source_folder": str(src.resolve()),
            "output_folder": str(root.resolve()),
            "settings": settings,
            "accelerations": list(accs),
            "mask_files": dict(mask_files),
            "splits": totals,
            "volumes": entries,
        }
        guard.check()
        records.write_json_atomic(dest / MANIFEST_NAME, manifest)  # in place: the run is complete
        if staged:
            guard.check()
            staging.swap_in(dest, root)
    except BaseException:
        if staged:  # the old dataset was never touched
            shutil.rmtree(dest, ignore_errors=True)
        else:  # never leave a half-converted dataset behind
            for path in written_paths:
                path.unlink(missing_ok=True)
            for folder in reversed(new_dirs):  # folders this run created, if left empty
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        raise
    return PrepareReport(dataset=dataset, out_dir=root, manifest=manifest_path, written=written,
                         skipped=skipped, slices={s: totals[s]["slices"] for s in SPLITS},
                         subjects={s: totals[s]["subjects"] for s in SPLITS},
                         volumes={s: totals[s]["volumes"] for s in SPLITS})


def _plain(value: object) -> object:
    """JSON/HDF5-friendly version of a metadata value."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Path):
        return str(value)
    return value
