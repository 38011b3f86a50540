"""Shared machinery of the dataset converters: fit, normalise, split, write, manifest.

Every converter (:mod:`.acdc`, :mod:`.mrbrains`, :mod:`.fastmri_knee`, :mod:`.calgary`)
only *finds* the volumes of a download and says how to *load* each one as a native-size
``(H, W, slices)`` array; everything else happens here, identically for every dataset:

1. **check** the source folder, then every source file's name and header (before any
   output is written, so most bad inputs fail fast and leave nothing behind);
2. **fit** each slice to the target size ``(H, W)``: centred crop where the image is larger,
   centred zero padding where it is smaller, per axis (:func:`fit_to_size`); with
   ``fit="strict"`` any other size is an error instead;
3. **normalise** each volume to [0, 1] (:func:`normalise_volume`): negative values are set
   to 0, then the volume is divided by its maximum (``percentile=100``, the default) or by
   its ``percentile``-th percentile and clipped at 1;
4. **split** by subject (:func:`split_subjects`): a seeded shuffle of the sorted subject ids,
   ``round(val_fraction * n)`` of them to validation; or the download's official split;
5. **write** ``<out>/<dataset>/{train,validation}/<volume>.h5`` through
   :func:`kdmri.data.write_volume` with the committed masks, skipping volumes a previous run
   finished (unless ``overwrite``); on any error the volumes written by this run are removed;
6. **record** ``<out>/<dataset>/manifest.json`` (atomically) once every volume is in place.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from kdmri.data import FS_KEY, img_key, kspace_key, write_volume
from kdmri.errors import ConfigError, DataError
from kdmri.physics.masks import DATASET_SHAPES, load_dataset_mask
from kdmri.paths import acc_tag, mask_path, project_root
from kdmri.io import atomic_text

SPLITS = ("train", "validation")
FIT_MODES = ("crop-pad", "strict")
SPLIT_MODES = ("seeded", "official")
MANIFEST_NAME = "manifest.json"
NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class PrepareOptions:
    """Settings of one conversion (the CLI flags of ``python -m kdmri prepare``).

    Attributes:
        accs: accelerations whose masks are applied (``"4x"``...); one file holds them all.
        size: target slice size ``(H, W)``; ``None`` = the dataset's reference size
            (:data:`kdmri.physics.masks.DATASET_SHAPES`). Another size needs ``masks_root`` holding
            masks of that size.
        fit: ``"crop-pad"`` (centred crop / zero pad to ``size``) or ``"strict"`` (error).
        percentile: normalisation divisor: 100 = volume maximum, else that percentile.
        split: ``"seeded"`` (shuffle subjects with ``seed``) or ``"official"``.
        val_fraction: fraction of subjects sent to validation by the seeded split.
        seed: seed of the seeded split.
        contrast: MRBrainS contrast (``T1``, ``T1_IR``, ``T2_FLAIR``); ``None`` elsewhere.
        overwrite: rewrite finished volumes and replace a dataset prepared differently.
        masks_root: folder holding ``<dataset>/mask_<acc>.npy`` (default: ``us_masks/``).
        progress: show a progress bar.
    """

    accs: tuple[str, ...] = ("4x", "5x", "8x")
    size: tuple[int, int] | None = None
    fit: str = "crop-pad"
    percentile: float = 100.0
    split: str = "seeded"
    val_fraction: float = 0.2
    seed: int = 0
    contrast: str | None = None
    overwrite: bool = False
    masks_root: Path | None = None
    progress: bool = True


@dataclass
class SourceVolume:
    """One output volume as found in a download, before it is loaded.

    Attributes:
        name: output file stem (``patient001_frame01``); unique within a dataset.
        subject: the unit of the split (patient, subject, scan); one subject's volumes always
            land in the same split.
        sources: the files read to build it (first one is named in error messages).
        shape: native ``(H, W, slices)`` read from the header, before fitting.
        load: returns the native ``(H, W, slices)`` real array; raises :class:`DataError`.
        official_split: ``"train"`` / ``"validation"`` from the download's own layout, or None.
        attrs: extra plain metadata stored in the HDF5 file and the manifest.
    """

    name: str
    subject: str
    sources: tuple[Path, ...]
    shape: tuple[int, int, int]
    load: Callable[[], np.ndarray]
    official_split: str | None = None
    attrs: dict[str, object] = field(default_factory=dict)


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
        """One human-readable paragraph for the CLI."""
        parts = [f"{split}: {self.subjects[split]} subjects, {self.volumes[split]} volumes, "
                 f"{self.slices[split]} slices" for split in SPLITS]
        return (f"{self.dataset}: wrote {len(self.written)} volume(s), skipped "
                f"{len(self.skipped)} already finished -> {self.out_dir}\n  "
                + "\n  ".join(parts) + f"\n  manifest: {self.manifest}")


# ----------------------------------------------------------------------------- helpers


def strip_nifti_suffix(name: str) -> str | None:
    """``'T1.nii.gz' -> 'T1'``; ``None`` when ``name`` is not a NIfTI file name."""
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def visible_files(folder: Path) -> list[Path]:
    """Sorted non-hidden files directly inside ``folder``."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def walk_dirs(root: Path) -> list[Path]:
    """``root`` and every non-hidden folder below it, sorted (deterministic order)."""
    found = []
    for current, dirs, _files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.append(Path(current))
    return sorted(found)


def check_source_folder(src: Path | str) -> Path:
    """The source folder as a Path; :class:`DataError` if it is missing, a file or empty."""
    src = Path(src).expanduser()
    if not src.exists():
        raise DataError(f"{src}: source folder not found (expected the unpacked download)")
    if not src.is_dir():
        raise DataError(f"{src}: expected a folder (the unpacked download), got a file")
    if not any(p for p in src.iterdir() if not p.name.startswith(".")):
        raise DataError(f"{src}: source folder is empty (expected the unpacked download)")
    return src


def nifti_header_shape(path: Path) -> tuple[int, ...]:
    """Array shape from a NIfTI header; :class:`DataError` if the file is not readable."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        return tuple(int(n) for n in img.shape)
    except Exception as exc:  # nibabel raises many kinds on corrupt input
        raise DataError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc}); "
                        "it may be truncated or corrupt: download it again") from exc


def load_nifti(path: Path) -> np.ndarray:
    """Voxel array (float64, scaling applied) of a NIfTI file; :class:`DataError` on failure."""
    import nibabel as nib

    try:
        data = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float64))
    except Exception as exc:
        raise DataError(f"{path}: could not read the image data ({type(exc).__name__}: {exc}); "
                        "the file may be truncated or corrupt: download it again") from exc
    return data


def nifti_3d(path: Path, what: str = "volume"):
    """``(shape, load)`` of a 3-D NIfTI image (a trailing singleton 4th axis is dropped):
    the shape from the header, checked to be ``(X, Y, slices)``, and a function that reads
    the voxels lazily. :class:`DataError` naming ``path`` otherwise."""
    shape = nifti_header_shape(path)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(f"{path}: expected a 3-D {what} (X, Y, slices), got shape {shape}")

    def load(path: Path = path) -> np.ndarray:
        data = load_nifti(path)
        return data.reshape(data.shape[:3])

    return shape, load


def check_finite(array: np.ndarray, source: Path, what: str = "image") -> None:
    """:class:`DataError` naming ``source`` and the first bad slice if ``array`` has NaN/inf.

    ``array`` is ``(H, W, slices)``.
    """
    bad = ~np.isfinite(array)
    if bad.any():
        per_slice = bad.reshape(-1, array.shape[-1]).sum(axis=0)
        first = int(np.flatnonzero(per_slice)[0])
        raise DataError(f"{source}: {what} contains {int(bad.sum())} NaN or infinite value(s) "
                        f"(first in slice {first}); expected finite intensities")


def fit_to_size(volume: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Centre-crop or zero-pad the first two axes of ``volume`` to ``size``.

    Per axis of length ``n`` and target ``t``: if ``n > t`` keep ``[(n - t) // 2,
    (n - t) // 2 + t)``; if ``n < t`` pad ``(t - n) // 2`` zeros before and the rest after.
    Works on ``(H, W)`` and ``(H, W, slices)`` arrays.
    """
    out = np.asarray(volume)
    for axis, target in enumerate(size[:2]):
        n = out.shape[axis]
        if n > target:
            start = (n - target) // 2
            out = np.take(out, np.arange(start, start + target), axis=axis)
        elif n < target:
            before = (target - n) // 2
            widths = [(0, 0)] * out.ndim
            widths[axis] = (before, target - n - before)
            out = np.pad(out, widths)
    return out


def fit_action(shape: Sequence[int], size: Sequence[int]) -> str:
    """``'none'``, ``'crop'``, ``'pad'`` or ``'crop+pad'``: what :func:`fit_to_size` does."""
    actions = {"crop" if n > t else "pad" for n, t in zip(shape[:2], size[:2]) if n != t}
    return "+".join(sorted(actions)) if actions else "none"


def normalise_volume(volume: np.ndarray, percentile: float = 100.0,
                     source: Path | str = "volume") -> tuple[np.ndarray, float]:
    """Scale a volume to [0, 1]; returns ``(normalised float32, divisor)``.

    Negative values are set to 0 (a magnitude image has none; they come from interpolation
    or bias correction), then the volume is divided by its maximum (``percentile=100``) or
    by its ``percentile``-th percentile over all voxels, and clipped at 1.
    """
    vol = np.maximum(np.asarray(volume, dtype=np.float64), 0.0)
    scale = float(vol.max()) if percentile >= 100 else float(np.percentile(vol, percentile))
    if not scale > 0:
        raise DataError(f"{source}: the image is all zero after fitting to the target size; "
                        "expected a volume with signal")
    return np.clip(vol / scale, 0.0, 1.0).astype(np.float32), scale


def split_subjects(subjects: Iterable[str], val_fraction: float, seed: int) -> dict[str, str]:
    """Deterministic subject-level split: ``{subject: 'train' | 'validation'}``.

    The unique subject ids are sorted, shuffled by ``numpy.random.default_rng(seed)``, and the
    first ``round(val_fraction * n)`` go to validation (at least 1 and at most ``n - 1`` when
    ``0 < val_fraction < 1``). The same ids, fraction and seed always give the same split.
    """
    ids = sorted(set(subjects))
    n = len(ids)
    if not 0.0 <= val_fraction <= 1.0:
        raise ConfigError(f"val_fraction={val_fraction}: expected a fraction in [0, 1]")
    n_val = int(round(val_fraction * n))
    if 0.0 < val_fraction < 1.0:
        if n < 2:
            raise DataError(f"only {n} subject(s) found: a train/validation split needs at least "
                            "2 (use --val-fraction 0 to put everything in train)")
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val = {ids[i] for i in order[:n_val]}
    return {s: ("validation" if s in val else "train") for s in ids}


def write_json_atomic(path: Path, payload: Mapping[str, object]) -> Path:
    """Write ``payload`` as JSON to ``path.tmp`` then rename; the tmp file never survives."""
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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_finished(path: Path, size: tuple[int, int], accs: Sequence[str]) -> bool:
    """True if ``path`` is a complete KD-MRI volume of ``size`` holding every acc in ``accs``."""
    try:
        with h5py.File(path, "r") as fh:
            if FS_KEY not in fh:
                return False
            shape = fh[FS_KEY].shape
            if len(shape) != 3 or tuple(shape[:2]) != tuple(size):
                return False
            return all(img_key(a) in fh and kspace_key(a) in fh for a in accs)
    except OSError:
        return False


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- driver


def validate_options(dataset: str, options: PrepareOptions
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
    size = tuple(options.size) if options.size is not None else DATASET_SHAPES[dataset]
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"size={options.size}: expected two positive integers H W")
    return (int(size[0]), int(size[1])), accs


def settings_record(dataset: str, options: PrepareOptions, size: tuple[int, int]) -> dict:
    """The settings that define a prepared dataset (compared between runs)."""
    return {
        "dataset": dataset,
        "size": list(size),
        "fit": options.fit,
        "normalisation": {"negative_to_zero": True, "divide_by_percentile": options.percentile,
                          "clip_to": [0.0, 1.0]},
        "split": options.split,
        "val_fraction": options.val_fraction if options.split == "seeded" else None,
        "seed": options.seed if options.split == "seeded" else None,
        "contrast": options.contrast,
    }


def assign_splits(dataset: str, volumes: Sequence[SourceVolume],
                  options: PrepareOptions) -> dict[str, str]:
    """``{volume name: split}``: seeded by subject, or the download's official split."""
    if options.split == "official":
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
        return {v.name: v.official_split for v in volumes}
    subject_split = split_subjects((v.subject for v in volumes), options.val_fraction, options.seed)
    return {v.name: subject_split[v.subject] for v in volumes}


def run_conversion(dataset: str, src: Path, out: Path, volumes: Sequence[SourceVolume],
                   options: PrepareOptions) -> PrepareReport:
    """Fit, normalise, split and write ``volumes``; then write the manifest.

    Args:
        dataset: ``cardiac``, ``mrbrain``, ``knee`` or ``calgary`` (names the mask folder).
        src: the download folder (recorded in the manifest, paths stored relative to it).
        out: the datasets folder; volumes go to ``out/<dataset>/<split>/<name>.h5``.
        volumes: what a converter's ``discover`` found.
        options: see :class:`PrepareOptions`.
    """
    from tqdm.auto import tqdm

    from kdmri import __version__

    size, accs = validate_options(dataset, options)
    if not volumes:
        raise DataError(f"{src}: no {dataset} volumes found")
    names = [v.name for v in volumes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        clash = [str(v.sources[0]) for v in volumes if v.name == dupes[0]]
        raise DataError(f"{dupes[0]}: two source volumes map to the same output name "
                        f"({', '.join(clash)}); keep one copy of each subject in --src")
    if options.fit == "strict":
        for v in volumes:
            if tuple(v.shape[:2]) != size:
                raise DataError(f"{v.sources[0]}: image size {tuple(v.shape[:2])} differs from "
                                f"the target {size} (fit=strict; use --fit crop-pad to centre-"
                                "crop / zero-pad)")

    masks, mask_files = {}, {}
    for tag in accs:
        masks[tag] = load_dataset_mask(dataset, tag, size, root=options.masks_root)
        path = mask_path(dataset, tag, options.masks_root)
        mask_files[tag] = {"path": _relative(path, project_root()), "sha256": _sha256(path)}

    split_of = assign_splits(dataset, volumes, options)
    root = out / dataset
    manifest_path = root / MANIFEST_NAME
    settings = settings_record(dataset, options, size)
    old = read_manifest(manifest_path)
    if old is not None and old.get("settings") != settings and not options.overwrite:
        changed = sorted(k for k in settings if (old.get("settings") or {}).get(k) != settings[k])
        raise DataError(f"{manifest_path}: {dataset} was already prepared with different "
                        f"settings ({', '.join(changed)}); use --overwrite to replace it, or "
                        "another --out")

    # leftovers of an interrupted writer are ours and never complete: remove them
    for split in SPLITS:
        folder = root / split
        if folder.is_dir():
            for tmp in folder.glob("*.tmp"):
                tmp.unlink()
    planned = {root / split_of[v.name] / f"{v.name}.h5" for v in volumes}
    recorded = {root / e["split"] / e["file"] for e in (old or {}).get("volumes", [])
                if isinstance(e, dict) and "split" in e and "file" in e}
    if options.overwrite:
        manifest_path.unlink(missing_ok=True)
        for stale in sorted(recorded - planned):
            stale.unlink(missing_ok=True)
    for v in volumes:  # one volume must never sit in both splits
        other = "train" if split_of[v.name] == "validation" else "validation"
        twin = root / other / f"{v.name}.h5"
        if twin.exists():
            if not options.overwrite:
                raise DataError(f"{twin}: this volume now belongs to '{split_of[v.name]}' (the "
                                "split changed); use --overwrite to move it")
            twin.unlink()
    strays = sorted(p for split in SPLITS if (root / split).is_dir()
                    for p in (root / split).glob("*.h5") if p not in planned)
    if strays:
        raise DataError(f"{strays[0]}: volume in the output folder that this conversion does not "
                        f"produce ({len(strays)} such file(s)); remove them, or use --overwrite if "
                        "a previous kdmri run wrote them, or choose another --out")

    new_dirs = [d for d in (root, root / "train", root / "validation") if not d.exists()]
    written: list[str] = []
    written_paths: list[Path] = []
    skipped: list[str] = []
    entries: list[dict] = []
    try:
        for v in tqdm(volumes, desc=f"prepare {dataset}", unit="vol", disable=not options.progress):
            split = split_of[v.name]
            target = root / split / f"{v.name}.h5"
            entry = {
                "name": v.name, "file": target.name, "split": split, "subject": v.subject,
                "sources": [_relative(p, src) for p in v.sources],
                "source_shape": list(v.shape), "fit": fit_action(v.shape, size),
                "slices": int(v.shape[2]), **{k: _plain(x) for k, x in v.attrs.items()},
            }
            if not options.overwrite and _is_finished(target, size, accs):
                skipped.append(v.name)
                entry["status"] = "skipped (already finished)"
                entries.append(entry)
                continue
            native = np.asarray(v.load())
            if native.ndim != 3 or np.iscomplexobj(native):
                raise DataError(f"{v.sources[0]}: expected a real (H, W, slices) image, got "
                                f"{native.dtype} {native.shape}")
            check_finite(native, v.sources[0])
            fitted = fit_to_size(native, size)
            volfs, scale = normalise_volume(fitted, options.percentile, v.sources[0])
            attrs = {"dataset": dataset, "subject": v.subject, "split": split,
                     "source": entry["sources"][0], "source_shape": list(v.shape),
                     "fit": entry["fit"], "normalisation_divisor": scale,
                     "normalisation_percentile": options.percentile, "kdmri_version": __version__}
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
            "mask_files": mask_files,
            "splits": totals,
            "volumes": entries,
        }
        write_json_atomic(manifest_path, manifest)
    except BaseException:
        for path in written_paths:  # never leave a half-converted dataset behind
            path.unlink(missing_ok=True)
        if recorded.intersection(written_paths):  # the old manifest no longer matches the files
            manifest_path.unlink(missing_ok=True)
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
