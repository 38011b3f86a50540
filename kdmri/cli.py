"""Command line: ``python -m kdmri <command> ...`` (``--help`` on each command)."""

from __future__ import annotations

import argparse
import sys

from .errors import KDMRIError


def _cmd_check_env(args) -> int:
    import numpy
    import torch

    import kdmri

    print(f"kdmri {kdmri.__version__} | torch {torch.__version__} | numpy {numpy.__version__} "
          f"| cuda available: {torch.cuda.is_available()}")
    return 0


def _cmd_masks(args) -> int:
    import numpy as np

    from .masks import DATASET_SHAPES, make_dataset_masks, sampled_fraction

    names = list(DATASET_SHAPES) if args.all or not args.dataset else args.dataset
    for path in make_dataset_masks(names, tuple(args.acc)):
        print(f"{path}  sampled fraction {sampled_fraction(np.load(path)):.4f}")
    return 0


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The configuration options shared by train / evaluate / pipeline."""
    p.add_argument("--params", help="params YAML (a path, or a name in params/ such as demo_4x)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set imitation_weight=0.5 (repeatable)")
    for flag, typ in (("--dataset", str), ("--acc", str), ("--epochs", int),
                      ("--batch-size", int), ("--device", str), ("--seed", int),
                      ("--data-root", str), ("--experiments-root", str), ("--method", str)):
        p.add_argument(flag, type=typ, default=None)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def config_from_args(args):
    """Config from ``--params``, then the named flags, then ``--set`` overrides."""
    from .config import load_config, parse_override

    overrides = {k: getattr(args, k) for k in ("dataset", "acc", "epochs", "batch_size", "device",
                                               "seed", "data_root", "experiments_root", "method")}
    if args.no_progress:
        overrides["progress"] = False
    overrides.update(dict(parse_override(o) for o in args.overrides))
    return load_config(args.params, overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kdmri", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-env", help="print versions of kdmri, torch, numpy")
    p.set_defaults(func=_cmd_check_env)

    p = sub.add_parser("masks", help="(re)generate the committed masks in us_masks/")
    p.add_argument("--dataset", nargs="*", help="datasets (default: all known)")
    p.add_argument("--acc", nargs="*", type=int, default=[4, 5, 8], help="accelerations")
    p.add_argument("--all", action="store_true", help="every known dataset")
    p.set_defaults(func=_cmd_masks)

    for register in _REGISTRARS:
        register(sub)
    return parser


#: Other modules add their sub-commands here (each a function taking the subparsers).
_REGISTRARS: list = []


def _load_registrars() -> None:
    import importlib

    for name in ("kdmri.demo", "kdmri.train", "kdmri.evaluate", "kdmri.pipeline", "kdmri.prepare",
                 "kdmri.batch", "kdmri.benchmark", "kdmri.reconstruct", "kdmri.export"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        register = getattr(module, "register_cli", None)
        if register is not None and register not in _REGISTRARS:
            _REGISTRARS.append(register)


def main(argv: list[str] | None = None) -> int:
    _load_registrars()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KDMRIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
