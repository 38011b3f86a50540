"""Converters from the real datasets' downloads to the KD-MRI HDF5 layout.

``python -m kdmri prepare <dataset> --src <download> --out <datasets folder>`` writes
``<out>/<dataset>/{train,validation}/<volume>.h5`` (via :func:`kdmri.data.write_volume`,
with the committed masks ``us_masks/<dataset>/mask_<acc>.npy``) and
``<out>/<dataset>/manifest.json``. One module per dataset finds and loads the volumes;
:mod:`kdmri.datasets.convert` fits, normalises, splits and writes them identically:

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

See ``docs/DATASETS.md`` for where to get each dataset and its terms of use.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from types import ModuleType

from kdmri.errors import ConfigError
from kdmri.datasets import acdc, calgary, fastmri_knee, mrbrains
from kdmri.datasets.convert import (
    FIT_MODES,
    SPLIT_MODES,
    PrepareOptions,
    PrepareReport,
    SourceVolume,
    check_source_folder,
    fit_to_size,
    normalise_volume,
    run_conversion,
    split_subjects,
)

#: dataset name (as in us_masks/ and params/) -> converter module
CONVERTERS: dict[str, ModuleType] = {
    acdc.DATASET: acdc,
    mrbrains.DATASET: mrbrains,
    fastmri_knee.DATASET: fastmri_knee,
    calgary.DATASET: calgary,
}

__all__ = [
    "CONVERTERS", "PrepareOptions", "PrepareReport", "SourceVolume", "discover", "fit_to_size",
    "normalise_volume", "prepare", "register_cli", "split_subjects",
]


def _converter(dataset: str) -> ModuleType:
    try:
        return CONVERTERS[dataset]
    except KeyError:
        raise ConfigError(f"dataset {dataset!r}: expected one of {sorted(CONVERTERS)}") from None


def _resolve(dataset: str, options: PrepareOptions) -> PrepareOptions:
    if dataset == mrbrains.DATASET:
        return replace(options, contrast=mrbrains.resolve_contrast(options.contrast))
    return options


def discover(dataset: str, src: Path | str, options: PrepareOptions | None = None
             ) -> list[SourceVolume]:
    """The volumes ``dataset``'s converter finds in ``src`` (names and headers checked)."""
    options = _resolve(dataset, options or PrepareOptions())
    return _converter(dataset).discover(check_source_folder(src), options)


def prepare(dataset: str, src: Path | str, out: Path | str | None = None,
            options: PrepareOptions | None = None) -> PrepareReport:
    """Convert the download ``src`` of ``dataset`` into ``out/<dataset>/`` (see module doc).

    Args:
        dataset: ``cardiac``, ``mrbrain``, ``knee`` or ``calgary``.
        src: the unpacked download folder.
        out: the datasets folder (default :func:`kdmri.paths.datasets_dir`).
        options: :class:`PrepareOptions` (accelerations, size, split, normalisation...).

    Raises:
        DataError: missing/empty source, unexpected file names, unreadable or truncated
            files, missing keys, NaNs, size mismatch under ``fit='strict'``...; any volume
            written by the failed run is removed first.
        ConfigError: an invalid option.
    """
    from kdmri.paths import datasets_dir

    converter = _converter(dataset)
    options = _resolve(dataset, options or PrepareOptions())
    source = check_source_folder(src)
    volumes = converter.discover(source, options)
    target = Path(out).expanduser() if out is not None else datasets_dir()
    return run_conversion(dataset, source, target, volumes, options)


def _cmd_prepare(args: argparse.Namespace) -> int:
    options = PrepareOptions(
        accs=tuple(args.acc), size=tuple(args.size) if args.size else None, fit=args.fit,
        percentile=args.percentile, split=args.split, val_fraction=args.val_fraction,
        seed=args.seed, contrast=args.contrast, overwrite=args.overwrite,
        masks_root=args.masks_root, progress=not args.quiet,
    )
    report = prepare(args.dataset, args.src, args.out, options)
    print(report.summary())
    return 0


def register_cli(subparsers) -> None:
    """Add ``prepare`` to the ``python -m kdmri`` sub-commands."""
    p = subparsers.add_parser(
        "prepare", help="convert a downloaded dataset (ACDC, MRBrainS, fastMRI knee, CC-359)",
        description="Convert a real dataset's download into datasets/<dataset>/{train,validation}"
                    "/<volume>.h5 plus manifest.json. See docs/DATASETS.md.")
    p.add_argument("dataset", choices=sorted(CONVERTERS),
                   help="cardiac (ACDC), mrbrain (MRBrainS13), knee (fastMRI single-coil), "
                        "calgary (CC-359)")
    p.add_argument("--src", required=True, type=Path, help="the unpacked download folder")
    p.add_argument("--out", type=Path, default=None,
                   help="datasets folder (default: <project>/datasets)")
    p.add_argument("--acc", nargs="+", default=["4x", "5x", "8x"],
                   help="accelerations to store (default: 4x 5x 8x)")
    p.add_argument("--overwrite", action="store_true",
                   help="rewrite finished volumes and replace a dataset prepared differently")
    p.add_argument("--contrast", default=None,
                   help="mrbrain only: T1 (default), T1_IR or T2_FLAIR")
    p.add_argument("--split", choices=SPLIT_MODES, default="seeded",
                   help="seeded: shuffle subjects with --seed (default); official: the "
                        "download's own folders (cardiac, mrbrain, knee)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of subjects in validation for --split seeded (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the seeded split (default 0)")
    p.add_argument("--percentile", type=float, default=100.0,
                   help="divide each volume by this percentile (default 100 = its maximum)")
    p.add_argument("--fit", choices=FIT_MODES, default="crop-pad",
                   help="crop-pad: centre-crop / zero-pad to the target size (default); "
                        "strict: any other size is an error")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="target size (default: the dataset's reference size; another size "
                        "needs --masks-root with masks of that size)")
    p.add_argument("--masks-root", type=Path, default=None,
                   help="folder holding <dataset>/mask_<acc>.npy (default: us_masks/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_prepare)
