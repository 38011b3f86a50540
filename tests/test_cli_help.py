"""The command line as a user meets it: a top-level help without docstring markup, one line
per command and examples, help text on every option of every command, ``--version``, and
``demo`` running what ``make demo`` runs."""

import argparse
import re

import pytest

import kdmri
from kdmri.tools import cli


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_top_level_help_is_for_users(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for markup in (":data:", ":func:", ":mod:", ":class:", "``"):
        assert markup not in text, f"docstring markup {markup!r} in --help"
    assert "static" not in text and "COMMANDS" not in text  # no developer notes
    assert "examples:" in text and "python -m kdmri demo" in text
    commands = _subparsers(cli.build_parser())
    for name in commands:  # one line per command, with its help
        assert re.search(rf"^    {re.escape(name)}\s", text, re.M), name


def test_every_option_of_every_command_has_help():
    parser = cli.build_parser()
    missing = []
    for name, sub in {"(top level)": parser, **_subparsers(parser)}.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, "options without help: " + ", ".join(missing)
    # the shared configuration flags say what they set
    train = _subparsers(parser)["train"].format_help()
    for flag in ("--dataset", "--acc", "--epochs", "--device", "--seed", "--batch-size", "--data-root",
                 "--experiments-root", "--method"):
        assert flag in train
    assert "cpu, cuda" in train and "4x, 5x or 8x" in train


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"kdmri {kdmri.__version__}"


def test_demo_runs_what_make_demo_runs(monkeypatch):
    """``python -m kdmri demo`` = the demo data, then ``batch --params demo_4x``; the Makefile's
    demo target calls it."""
    calls = []
    monkeypatch.setattr("kdmri.data.demo.build_demo", lambda *a, **k: calls.append(("demo-data",)))
    original = cli.main

    def fake_main(argv=None):
        if argv and argv[0] == "batch":
            calls.append(tuple(argv))
            return 0
        return original(argv)

    monkeypatch.setattr(cli, "main", fake_main)
    assert original(["demo", "--set", "epochs=1"]) == 0
    assert calls == [("demo-data",),
                     ("batch", "--params", cli.DEMO_PARAMS, "--jobs", "1", "--set", "epochs=1")]
    assert cli.DEMO_PARAMS == "demo_4x"
    from kdmri.paths import project_root

    makefile = (project_root() / "Makefile").read_text()
    demo_recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert re.search(r"-m kdmri demo($|\s)", demo_recipe, re.M)  # not only demo-data
