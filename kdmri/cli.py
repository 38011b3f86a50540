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
    from .masks import DATASET_SHAPES, make_dataset_masks, sampled_fraction
    import numpy as np

    names = list(DATASET_SHAPES) if args.all or not args.dataset else args.dataset
    for path in make_dataset_masks(names, tuple(args.acc)):
        print(f"{path}  sampled fraction {sampled_fraction(np.load(path)):.4f}")
    return 0


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

    for name in ("kdmri.demo", "kdmri.train", "kdmri.evaluate", "kdmri.prepare", "kdmri.batch",
                 "kdmri.benchmark"):
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
