"""The configuration options shared by the commands that train, evaluate or run notebooks."""

from __future__ import annotations

import argparse

from kdmri.config import load_config, merge, parse_override


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
    overrides = {k: getattr(args, k) for k in ("dataset", "acc", "epochs", "batch_size", "device",
                                               "seed", "data_root", "experiments_root", "method")}
    if args.no_progress:
        overrides["progress"] = False
    # --set after the flags, as given: `--set max_train_slices=null` sets None (load_config
    # skips the flags' None, which means "not given")
    return merge(load_config(args.params, overrides), dict(parse_override(o) for o in args.overrides),
                 source="--set")
