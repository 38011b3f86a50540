"""Command line: ``python -m kdmri <command> ...`` (``--help`` on each command).

The command table is static (:data:`COMMANDS`); nothing in the package imports this module.
"""

from __future__ import annotations

import argparse
import sys

from kdmri.datasets import register_cli as register_prepare
from kdmri.datasets.demo import register_cli as register_demo_data
from kdmri.errors import KDMRIError
from kdmri.tools import (
    benchmark,
    commands,
    export,
    fastpath,
    jobs,
    notebooks,
    pipeline,
    reconstruct,
    srselect,
    study,
)

#: Every sub-command, in the order ``--help`` lists them: a function adding its parser.
COMMANDS = (
    commands.register_check_env,
    commands.register_masks,
    register_demo_data,
    register_prepare,
    commands.register_train,
    commands.register_evaluate,
    commands.register_seed_study,
    pipeline.register_cli,
    jobs.register_cli,
    notebooks.register_cli,
    benchmark.register_cli,
    fastpath.register_cli,
    reconstruct.register_cli,
    export.register_cli,
    srselect.register_cli,
    study.register_cli,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kdmri", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
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
