"""Command line: ``python -m kdmri <command> ...``.

Developer notes: the command table is static (:data:`COMMANDS`, each entry a function adding
one sub-parser); nothing in the package imports this module. What users read is
:data:`DESCRIPTION` and :data:`EPILOG` (``--help``), not this docstring.
"""

from __future__ import annotations

import argparse
import sys

import kdmri
from kdmri.datasets import register_cli as register_prepare
from kdmri.datasets.demo import register_cli as register_demo_data
from kdmri.errors import KDMRIError
from kdmri.inference import export, reconstruct
from kdmri.tools import (
    benchmark,
    commands,
    fastpath,
    jobs,
    notebook_cli,
    pipeline,
    publish,
    site,
    srselect,
    study,
)

#: The top of ``python -m kdmri --help``.
DESCRIPTION = """kdmri: knowledge distillation for MRI reconstruction (KD-MRI, SFT-KD-Recon).
Train, evaluate and compare teacher and student networks, run the tutorial notebooks,
build the documentation site. Every command has its own --help."""

#: The foot of ``python -m kdmri --help``.
EPILOG = """examples:
  python -m kdmri demo                         # what `make demo` runs (about 20 minutes on 2 CPU cores)
  python -m kdmri pipeline --params demo_4x    # the KD-MRI stages only, no notebooks
  python -m kdmri train --stage teacher --params demo_4x --epochs 5
  python -m kdmri batch --params demo_4x --notebooks 03 04
  python -m kdmri <command> --help             # the options of one command
"""

#: The parameters file of ``python -m kdmri demo`` (and so of ``make demo``).
DEMO_PARAMS = "demo_4x"


def register_demo(sub) -> None:
    """``demo``: build the demo dataset, then every notebook on :data:`DEMO_PARAMS` (a batch
    run), exactly what ``make demo`` runs."""
    p = sub.add_parser("demo", help="what `make demo` runs: build the demo dataset, then execute every "
                       f"notebook on params/{DEMO_PARAMS}.yaml into runs/demo/acc_4x/")
    p.add_argument("--jobs", type=int, default=1, metavar="K",
                   help="run up to K independent notebooks at once (default 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a Config field in every notebook, e.g. --set epochs=5 (repeatable)")
    p.add_argument("--out", default=None, help="runs folder (default: runs/)")

    def run(args: argparse.Namespace) -> int:
        if main(["demo-data"]):  # the demo dataset and its domain-shift test set
            return 1
        argv = ["batch", "--params", DEMO_PARAMS, "--jobs", str(args.jobs)]
        for override in args.overrides:
            argv += ["--set", override]
        return main(argv + (["--out", args.out] if args.out else []))

    p.set_defaults(func=run)


#: Every sub-command, in the order ``--help`` lists them: a function adding its parser.
COMMANDS = (
    register_demo,
    commands.register_check_env,
    commands.register_masks,
    register_demo_data,
    register_prepare,
    commands.register_train,
    commands.register_evaluate,
    commands.register_seed_study,
    pipeline.register_cli,
    jobs.register_cli,
    notebook_cli.register_cli,
    benchmark.register_cli,
    fastpath.register_cli,
    reconstruct.register_cli,
    export.register_cli,
    srselect.register_cli,
    study.register_cli,
    publish.register_cli,
    commands.register_figures,
    site.register_cli,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kdmri", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kdmri {kdmri.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="<command>")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KDMRIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
