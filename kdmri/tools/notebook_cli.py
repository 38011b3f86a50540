"""``python -m kdmri notebooks check | strip | refresh | sync | new``: the command over the
notebook-file tooling of :mod:`kdmri.tools.notebooks`."""

from __future__ import annotations

from pathlib import Path

from kdmri.errors import ConfigError
from kdmri.tools.notebooks import (
    REPO_URL,
    check_notebook,
    discover_notebooks,
    new_notebook,
    read_notebook,
    refresh_notebook,
    strip_outputs,
    sync_notebook,
    sync_readme,
    write_notebook,
)


def _notebook_command(args) -> int:
    if args.action == "new":
        if len(args.paths) != 1 or not args.title:
            raise ConfigError("notebooks new: expected one path and --title")
        print(new_notebook(args.paths[0], args.title))
        return 0
    paths = [Path(p) for p in args.paths] if args.paths else discover_notebooks()
    status = 0
    if args.action == "sync" and not args.paths:
        print(f"{'updated' if sync_readme(None, args.repo_url or REPO_URL) else 'unchanged'} README.md")
    for path in paths:
        if args.action == "check":
            problems = check_notebook(path)
            for p in problems:
                print(f"{path}: {p}")
            status |= bool(problems)
        elif args.action == "strip":
            write_notebook(strip_outputs(read_notebook(path)), path)
            print(f"stripped {path}")
        elif args.action == "sync":
            changed = sync_notebook(path, args.repo_url or REPO_URL)
            print(f"{'updated' if changed else 'unchanged'} {path}")
        elif args.action == "refresh":
            print(f"executing {path} with its default parameters ...")
            refresh_notebook(path, args.kernel)
    return status


def register_cli(sub) -> None:
    p = sub.add_parser("notebooks", help="keep notebook files to the conventions: check, strip "
                       "outputs, refresh checked outputs, sync badges/set-up cells, new notebook")
    p.add_argument("action", choices=["check", "strip", "refresh", "sync", "new"],
                   help="check the conventions, strip outputs, refresh (execute, then strip), "
                   "sync (REPO_URL into every notebook), new (a notebook's opening cells)")
    p.add_argument("paths", nargs="*", help="notebooks (default: every notebooks/NN_*.ipynb)")
    p.add_argument("--repo-url", default=None,
                   help="sync: repository URL (default: kdmri.tools.notebooks.REPO_URL)")
    p.add_argument("--title", default=None, help="new: the notebook's title")
    p.add_argument("--kernel", default=None, help="refresh: Jupyter kernel (default: the notebook's)")
    p.set_defaults(func=_notebook_command)
