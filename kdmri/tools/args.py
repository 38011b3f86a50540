"""The configuration options shared by the commands that train, evaluate or run notebooks."""

from __future__ import annotations

import argparse

from kdmri.config import load_config, merge, parse_override

#: The named configuration flags: flag, type, help. Each sets the Config field of its name.
CONFIG_FLAGS = (
    ("--dataset", str, "dataset: demo, cardiac, mrbrain, knee or calgary"),
    ("--acc", str, "acceleration (undersampling factor): 4x, 5x or 8x"),
    ("--epochs", int, "training epochs per stage"),
    ("--batch-size", int, "slices per training batch"),
    ("--device", str, "cpu, cuda, cuda:N or auto (a GPU when there is one)"),
    ("--seed", int, "random seed (weight initialisation, data order)"),
    ("--data-root", str, "the dataset's folder, holding train/ and validation/ (else datasets/<dataset>)"),
    ("--experiments-root", str, "folder of the trained stages (experiments/<dataset>/acc_<acc>/...)"),
    ("--method", str, "experiment prefix of the stages, e.g. kdmri (folder <method>_<role>)"),
)


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The configuration options shared by train / evaluate / pipeline."""
    p.add_argument("--params", help="params YAML (a path, or a name in params/ such as demo_4x)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set imitation_weight=0.5 (repeatable)")
    for flag, typ, text in CONFIG_FLAGS:
        p.add_argument(flag, type=typ, default=None, help=text + " (default: the params file's)")
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
