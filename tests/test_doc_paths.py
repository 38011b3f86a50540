"""Every repository path that README.md, docs/*.md and the notebooks cite exists.

A cited path is a token such as ``kdmri/tools/batch.py``, ``docs/RESULTS.md`` or
``params/demo_4x.yaml`` (in backticks, a link or plain text) that starts with one of the
repository's own top-level folders or files. Paths under generated folders (``runs/``,
``experiments/``, ``datasets/``), paths with placeholders (``<dataset>``, ``*``, ``{...}``) and
URLs are not checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("kdmri", "docs", "notebooks", "params", "us_masks", "tests", "benchmarks", ".ci")
FILES = ("README.md", "Makefile", "pyproject.toml", "environment.yml", "requirements.lock",
         "CITATION.cff", "LICENSE", "postBuild")
TOKEN = re.compile(r"(?<![\w./:-])((?:%s)/[\w./-]*[\w/])" % "|".join(re.escape(t) for t in TOP))
PLACEHOLDER = re.compile(r"[<>*{}]|\.\.\.")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            *sorted((ROOT / "notebooks").glob("*.ipynb"))]


def text_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells)
    return path.read_text()


def cited_paths(text: str) -> set[str]:
    """Repository paths cited in ``text`` (without a trailing ``:line`` or ``#anchor``)."""
    out = set()
    for match in TOKEN.finditer(text):
        token = match.group(1).rstrip("./")
        end = match.end(1)
        if PLACEHOLDER.search(text[end:end + 1]) or PLACEHOLDER.search(token):
            continue
        out.add(token)
    return out


def test_cited_paths_are_recognised():
    text = ("see `kdmri/tools/batch.py:412`, [docs](docs/RESULTS.md#protocol), params/demo_4x.yaml, "
            "us_masks/<dataset>/mask_<acc>.npy, https://x.org/kdmri/a.py and runs/demo/")
    assert cited_paths(text) == {"kdmri/tools/batch.py", "docs/RESULTS.md", "params/demo_4x.yaml"}


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_path_exists(doc):
    missing = sorted(p for p in cited_paths(text_of(doc)) if not (ROOT / p).exists())
    assert not missing, f"{doc.relative_to(ROOT)} cites paths that do not exist: {missing}"
