"""Converters from the real datasets' downloads to the KD-MRI HDF5 layout.

``python -m kdmri prepare <dataset> --src <download> --out <datasets folder>`` writes
``<out>/<dataset>/{train,validation}/<volume>.h5`` (via :func:`kdmri.data.write_volume`,
with the committed masks ``us_masks/<dataset>/mask_<acc>.npy``) and
``<out>/<dataset>/manifest.json``. One module per dataset registers a
:class:`~kdmri.datasets.registry.DatasetSpec` (size, paper label, converter, example
writer, official split, layout check); this package imports every module it holds, so a
new dataset is one new file here. :mod:`kdmri.datasets.convert` fits, normalises, splits
and writes every dataset identically:

===========  ==============================  ==========  ===================================
dataset      download                         size        module
===========  ==============================  ==========  ===================================
``cardiac``  ACDC (NIfTI, ED/ES frames)       150 x 150   :mod:`kdmri.datasets.acdc`
``mrbrain``  MRBrainS13 (NIfTI, per subject)  240 x 240   :mod:`kdmri.datasets.mrbrains`
``knee``     fastMRI knee single-coil (HDF5)  640 x 368   :mod:`kdmri.datasets.fastmri_knee`
``calgary``  Calgary-Campinas CC-359 (NIfTI)  256 x 256   :mod:`kdmri.datasets.calgary`
===========  ==============================  ==========  ===================================

Python use::

    from kdmri.datasets import PrepareOptions, prepare
    report = prepare("mrbrain", "~/downloads/MRBrainS13DataNii", "datasets",
                     PrepareOptions(accs=("4x", "5x", "8x"), contrast="T1"))
    print(report.summary())

``python -m kdmri rechunk --root datasets/knee`` rewrites files written before per-slice
chunking (:func:`kdmri.data.chunking.rechunk_folder`). See ``docs/DATASETS.md`` for where to
get each dataset, its terms of use, and how to add a dataset.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from kdmri.data.fit_size import fit_to_size
from kdmri.datasets.convert import (
    FIT_MODES,
    SPLIT_MODES,
    PrepareOptions,
    PrepareReport,
    run_conversion,
)
from kdmri.datasets.interrupts import Interrupted, deferred
from kdmri.datasets.registry import (
    DatasetSpec,
    dataset_names,
    get_dataset,
    paper_label,
    register_dataset,
    unregister_dataset,
)
from kdmri.datasets.rules import normalise_volume, split_subjects
from kdmri.datasets.sources import SourceVolume, check_source_folder
from kdmri.errors import ConfigError

#: modules of this package that are machinery, not datasets
_MACHINERY = {"convert", "examples", "interrupts", "records", "registry", "rules", "sources",
              "staging"}


def _import_dataset_modules() -> None:
    """Import every dataset module of this package (each registers its spec)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _MACHINERY and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_import_dataset_modules()

__all__ = [
    "DatasetSpec", "PrepareOptions", "PrepareReport", "SourceVolume", "dataset_names", "discover",
    "fit_to_size", "get_dataset", "normalise_volume", "paper_label", "prepare", "register_cli",
    "register_dataset", "split_subjects", "unregister_dataset",
]


def _converter(dataset: str, options: PrepareOptions | None) -> tuple[DatasetSpec, PrepareOptions]:
    spec = get_dataset(dataset)
    if spec.discover is None:
        raise ConfigError(f"dataset {dataset!r} is not converted from a download "
                          f"({spec.notes or 'no converter'}); prepare converts "
                          f"{dataset_names(convertible=True)}")
    options = options or PrepareOptions()
    if spec.resolve_options is not None:
        options = spec.resolve_options(options)
    return spec, options


def discover(dataset: str, src: Path | str, options: PrepareOptions | None = None
             ) -> list[SourceVolume]:
    """The volumes ``dataset``'s converter finds in ``src`` (names and headers checked)."""
    spec, options = _converter(dataset, options)
    return spec.discover(check_source_folder(src), options)


def prepare(dataset: str, src: Path | str, out: Path | str | None = None,
            options: PrepareOptions | None = None) -> PrepareReport:
    """Convert the download ``src`` of ``dataset`` into ``out/<dataset>/`` (see module doc).

    Args:
        dataset: a registered dataset with a converter (:func:`dataset_names` with
            ``convertible=True``: ``cardiac``, ``mrbrain``, ``knee``, ``calgary``).
        src: the unpacked download folder.
        out: the datasets folder (default :func:`kdmri.paths.datasets_dir`).
        options: :class:`PrepareOptions` (accelerations, size, split, normalisation...).

    Raises:
        DataError: missing/empty source, unexpected file names, unreadable or truncated
            files, missing keys, NaNs, a shape that is not the dataset's layout, an empty
            official split...; a failed run leaves the output folder as it was.
        ConfigError: an invalid option or an unknown dataset.
        Interrupted: SIGINT or SIGTERM arrived; the output folder is as it was.
    """
    from kdmri.paths import datasets_dir

    spec, options = _converter(dataset, options)
    with deferred(f"prepare {dataset}") as guard:  # SIGINT / SIGTERM: see .interrupts
        source = check_source_folder(src)
        volumes = spec.discover(source, options)
        target = Path(out).expanduser() if out is not None else datasets_dir()
        return run_conversion(dataset, source, target, volumes, options, guard)


def _cmd_prepare(args: argparse.Namespace) -> int:
    options = PrepareOptions(
        accs=tuple(args.acc), size=tuple(args.size) if args.size else None, fit=args.fit,
        percentile=args.percentile, split=args.split, val_fraction=args.val_fraction,
        seed=args.seed, contrast=args.contrast, overwrite=args.overwrite,
        masks_root=args.masks_root, progress=not args.quiet,
    )
    try:
        report = prepare(args.dataset, args.src, args.out, options)
    except Interrupted as exc:  # one line, and the shell's status for a signal
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    print(report.summary())
    return 0


def register_cli(subparsers) -> None:
    """Add ``prepare`` to the ``python -m kdmri`` sub-commands."""
    p = subparsers.add_parser(
        "prepare", help="convert a downloaded dataset (ACDC, MRBrainS, fastMRI knee, CC-359)",
        description="Convert a real dataset's download into datasets/<dataset>/{train,validation}"
                    "/<volume>.h5 plus manifest.json. See docs/DATASETS.md.")
    names = dataset_names(convertible=True)
    p.add_argument("dataset", choices=names,
                   help="; ".join(f"{n} ({get_dataset(n).title})" for n in names))
    p.add_argument("--src", required=True, type=Path, help="the unpacked download folder")
    p.add_argument("--out", type=Path, default=None,
                   help="datasets folder, relative to the current directory like --src "
                        "(default: <project>/datasets); the absolute path is printed, with the "
                        "data_root a params file needs when it is not the default")
    p.add_argument("--acc", nargs="+", default=["4x", "5x", "8x"],
                   help="accelerations to store (default: 4x 5x 8x)")
    p.add_argument("--overwrite", action="store_true",
                   help="rebuild every volume and replace a dataset prepared differently (built "
                        "beside the old one and swapped in when complete)")
    p.add_argument("--contrast", default=None,
                   help="mrbrain only: T1 (default), T1_IR or T2_FLAIR")
    p.add_argument("--split", choices=SPLIT_MODES, default="seeded",
                   help="seeded: shuffle subjects with --seed (default); official: the "
                        "download's own folders (" + ", ".join(
                            n for n in names if get_dataset(n).official_split) + ")")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of subjects in validation for --split seeded (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the seeded split (default 0)")
    p.add_argument("--percentile", type=float, default=100.0,
                   help="divide each volume by this percentile (default 100 = its maximum)")
    p.add_argument("--fit", choices=FIT_MODES, default="auto",
                   help="auto (default): centre-crop / zero-pad to the target size, but stop on "
                        "a shape that cannot be the dataset's layout; crop-pad: fit any shape; "
                        "strict: any other size is an error")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="target size (default: the dataset's reference size; another size "
                        "needs --masks-root with masks of that size)")
    p.add_argument("--masks-root", type=Path, default=None,
                   help="folder holding <dataset>/mask_<acc>.npy (default: us_masks/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_prepare)

    r = subparsers.add_parser(
        "rechunk", help="rewrite prepared .h5 volumes with one HDF5 chunk per slice",
        description="Rewrite every .h5 below --root whose (H, W, slices) arrays are not stored "
                    "one chunk per slice (files written by older kdmri versions); each file is "
                    "rewritten atomically and its content verified equal, keeping its file mode and "
                    "compression; linked files are skipped (listed). See docs/DATASETS.md.")
    r.add_argument("--root", type=Path, required=True, help="e.g. datasets/knee")
    r.set_defaults(func=_cmd_rechunk)


def _cmd_rechunk(args: argparse.Namespace) -> int:
    from kdmri.data.chunking import rechunk_folder

    done = rechunk_folder(args.root)
    print(f"{args.root}: rewrote {len(done.rewritten)} file(s), {len(done.unchanged)} already "
          "chunked per slice")
    if done.links:
        print(f"left {len(done.links)} linked file(s) as links, not rewritten (rechunk the folder "
              f"they point into): {', '.join(str(p) for p in done.links)}")
    return 0
