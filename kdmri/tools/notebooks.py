"""Notebook files: the conventions every tutorial notebook follows, and the tools that keep
the files to them (``python -m kdmri notebooks {check,strip,refresh,sync,new}``).

Conventions (docs/NOTEBOOKS.md has the full text):

* opening cells: (1) a markdown title with the "Open in Colab" badge
  (:func:`colab_badge`); (2) the set-up cell (:func:`setup_source`, identical in every
  notebook) that installs kdmri where it is not importable; (3) imports ending with
  ``print(nb.environment_report())``; (4) the one cell tagged ``parameters`` holding plain
  literals: ``params_file = 'ci'`` (the quick profile, ``params/ci.yaml``) and every other
  parameter ``None`` (deferring to the params file);
  (5) ``cfg = nb.notebook_config(params_file, name=name, ...)`` with every parameter
  (:func:`kdmri.tutorial.notebook_config`).
* committed notebooks keep outputs only in cells tagged ``nbval-check-output`` (executed,
  with their execution count); :func:`strip_outputs`, :func:`check_notebook`.

:data:`REPO_URL` is the one place the repository address lives; after changing it run
``python -m kdmri notebooks sync`` to rewrite the badges and set-up cells.
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kdmri.config import NOTEBOOK_KEY, read_params
from kdmri.errors import ConfigError
from kdmri.io import atomic_path
from kdmri.paths import project_root
from kdmri.tools.names import URL, checked

#: The repository address: a placeholder until the repository is published. Set it here,
#: then run ``python -m kdmri notebooks sync`` (badges and set-up cells follow it).
REPO_URL = "https://github.com/<org>/kdmri"
BRANCH = "main"
NOTEBOOK_FOLDER = "notebooks"
CLONE_DIR = "kdmri-repo"

PARAMETERS_TAG = "parameters"
#: The default ``params_file`` of every notebook: the quick CI profile (params/ci.yaml).
DEFAULT_PARAMS = "ci"
CHECK_TAG = "nbval-check-output"
COLAB_BADGE_SVG = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE_SVG = "https://mybinder.org/badge_logo.svg"
DOCS_BADGE_SVG = "https://img.shields.io/badge/docs-site-blue"
#: A tutorial notebook's file name: ``NN_name.ipynb``, run in the order of ``NN``.
NUMBERED = re.compile(r"^(\d+)_")


# =========================================================================== links


def _repo_path(repo_url: str) -> str:
    return checked("--repo-url", repo_url, URL).rstrip("/").removeprefix("https://github.com/")


def colab_url(notebook: str | Path, repo_url: str = REPO_URL, branch: str = BRANCH) -> str:
    """Colab address of ``notebooks/<name>`` on GitHub."""
    return (f"https://colab.research.google.com/github/{_repo_path(repo_url)}/blob/{branch}/"
            f"{NOTEBOOK_FOLDER}/{Path(notebook).name}")


def colab_badge(notebook: str | Path, repo_url: str = REPO_URL, branch: str = BRANCH) -> str:
    """The markdown "Open in Colab" badge of a notebook."""
    return f"[![Open In Colab]({COLAB_BADGE_SVG})]({colab_url(notebook, repo_url, branch)})"


def binder_url(notebook: str | Path | None = None, repo_url: str = REPO_URL, branch: str = BRANCH) -> str:
    """Binder address opening JupyterLab on ``notebooks/<name>`` (or on the folder)."""
    target = f"{NOTEBOOK_FOLDER}/{Path(notebook).name}" if notebook else NOTEBOOK_FOLDER
    return f"https://mybinder.org/v2/gh/{_repo_path(repo_url)}/{branch}?urlpath=lab/tree/{target}"


def binder_badge(notebook: str | Path | None = None, repo_url: str = REPO_URL, branch: str = BRANCH) -> str:
    """The markdown "launch binder" badge."""
    return f"[![Binder]({BINDER_BADGE_SVG})]({binder_url(notebook, repo_url, branch)})"


def site_url(repo_url: str = REPO_URL) -> str:
    """The documentation site's published address (GitHub Pages of the repository,
    ``https://<owner>.github.io/<name>/``); ``make docs`` builds it into ``build/site/``."""
    owner, _, name = _repo_path(repo_url).partition("/")
    return f"https://{owner}.github.io/{name}/"


def docs_badge(repo_url: str = REPO_URL) -> str:
    """The markdown badge linking the documentation site."""
    return f"[![Documentation]({DOCS_BADGE_SVG})]({site_url(repo_url)})"


def setup_source(repo_url: str = REPO_URL) -> str:
    """Source of the set-up cell (the second cell of every notebook).

    It runs before kdmri can be imported, so it is plain Python: where kdmri is missing
    (Colab, a bare kernel) it clones the repository (with params/ and us_masks/) and installs
    it in editable mode. ``repo_url`` is checked (:data:`kdmri.tools.names.URL`) and quoted."""
    literal = json.dumps(checked("--repo-url", repo_url, URL))  # a Python string literal
    return f'''# Set-up: where kdmri is not installed (Colab, a bare kernel) clone the repository, which
# brings params/ and us_masks/ along, and install it; elsewhere this cell does nothing.
import importlib.util
import os
import subprocess
import sys

REPO_URL = {literal}  # kdmri.tools.notebooks.REPO_URL (docs/NOTEBOOKS.md)
if importlib.util.find_spec("kdmri") is None:
    if "<org>" in REPO_URL:  # the repository is not published yet: nothing to clone
        raise RuntimeError("kdmri is not installed and REPO_URL is still a placeholder: run this "
                           "notebook from a clone of the repository after `pip install -e .`, or "
                           "set REPO_URL above to the repository's address")
    if not os.path.isdir("{CLONE_DIR}"):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "{CLONE_DIR}"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", "{CLONE_DIR}"], check=True)
    sys.path.insert(0, os.path.abspath("{CLONE_DIR}"))'''


#: The README's badge line is between these markers (:func:`sync_readme` rewrites it).
README_BADGES = ("<!-- badges -->", "<!-- /badges -->")


def readme_badges(repo_url: str = REPO_URL) -> str:
    """The README's badge block: the documentation site, Binder (JupyterLab on notebooks/) and
    Colab (notebook 00)."""
    first = discover_notebooks()[0].name if discover_notebooks() else "00_data.ipynb"
    badges = f"{docs_badge(repo_url)} {binder_badge(repo_url=repo_url)} {colab_badge(first, repo_url)}"
    return f"{README_BADGES[0]}\n{badges}\n{README_BADGES[1]}"


def sync_readme(path: str | Path | None = None, repo_url: str = REPO_URL) -> bool:
    """Write the badge block of ``README.md`` for ``repo_url`` (after its title if it has
    none yet); returns whether the file changed."""
    path = Path(path) if path is not None else project_root() / "README.md"
    text = path.read_text()
    block = readme_badges(repo_url)
    pattern = re.compile(re.escape(README_BADGES[0]) + r".*?" + re.escape(README_BADGES[1]), re.S)
    if pattern.search(text):
        new = pattern.sub(lambda _: block, text)
    else:
        title, _, rest = text.partition("\n")
        new = f"{title}\n\n{block}\n{rest}"
    if new == text:
        return False
    with atomic_path(path) as tmp:
        tmp.write_text(new)
    return True


# =========================================================================== notebook files


def notebooks_folder() -> Path:
    """The project's ``notebooks/`` folder."""
    return project_root() / "notebooks"


def resolve_notebook(name: str | Path) -> Path:
    """``name`` as a path when it is one (or has a suffix); else the numbered notebook of
    ``notebooks/`` whose number (``3``, ``03``) or stem (``03_teacher_student``) it gives."""
    path = Path(name)
    if path.suffix or path.exists() or len(path.parts) > 1:
        return path
    folder = notebooks_folder()
    text = str(name)
    matches = [p for p in sorted(folder.glob("*.ipynb")) if NUMBERED.match(p.name) and (
        p.stem == text or (text.isdigit() and int(NUMBERED.match(p.name).group(1)) == int(text)))]
    return matches[0] if len(matches) == 1 else path


def order_notebooks(paths: Iterable[str | Path]) -> list[Path]:
    """Dependency order: numbered notebooks (``NN_name.ipynb``) by number, then the others
    in the order given. A bare number or stem (``03``, ``03_teacher_student``) names the
    notebook of ``notebooks/`` it identifies."""
    paths = [resolve_notebook(p) for p in paths]

    def key(item):
        i, p = item
        m = NUMBERED.match(p.name)
        return (0, int(m.group(1)), p.name) if m else (1, i, p.name)

    return [p for _, p in sorted(enumerate(paths), key=key)]


def discover_notebooks(folder: str | Path | None = None) -> list[Path]:
    """Every ``NN_*.ipynb`` of ``folder`` (default ``notebooks/``) in numeric order."""
    folder = Path(folder) if folder is not None else notebooks_folder()
    found = [p for p in folder.glob("*.ipynb") if NUMBERED.match(p.name)]
    if not found:
        raise ConfigError(f"{folder}: no numbered notebooks (NN_name.ipynb)")
    return order_notebooks(found)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def read_notebook(path: str | Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def write_notebook(nb, path: str | Path) -> None:
    import nbformat

    with atomic_path(path) as tmp:
        nbformat.write(nb, str(tmp))


def strip_outputs(nb):
    """Apply the output rule in place and return ``nb``: code cells keep outputs and
    execution counts only when tagged ``nbval-check-output``; papermill's injected cells
    and execution metadata are removed."""
    nb.cells = [c for c in nb.cells if "injected-parameters" not in _tags(c)]
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in ("papermill", "execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        if CHECK_TAG not in _tags(cell):
            cell.outputs = []
            cell.execution_count = None
        else:
            cell.outputs = _coalesce_streams(cell.outputs)
    return nb


def _coalesce_streams(outputs: list) -> list:
    """Merge consecutive stream outputs of the same name (stdout split into chunks)."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and prev is not None
                and prev.get("output_type") == "stream" and prev.get("name") == out.get("name")):
            prev["text"] = "".join(prev["text"]) + "".join(out["text"])
            continue
        merged.append(out)
    return merged


def parameters_cell(nb) -> tuple[int, Any]:
    """``(index, cell)`` of the one cell tagged ``parameters``; ConfigError otherwise."""
    found = [(i, c) for i, c in enumerate(nb.cells) if PARAMETERS_TAG in _tags(c)]
    if len(found) != 1:
        raise ConfigError(f"expected exactly one cell tagged {PARAMETERS_TAG!r}, found {len(found)}")
    return found[0]


def parameter_defaults(nb) -> dict[str, Any]:
    """The plain-literal defaults of the parameters cell, ``{name: value}``; ConfigError
    if the cell holds anything but ``name = <literal>`` statements."""
    _, cell = parameters_cell(nb)
    try:
        tree = ast.parse(_source(cell))
    except SyntaxError as exc:
        raise ConfigError(f"parameters cell: not valid Python ({exc})") from exc
    values = {}
    for stmt in tree.body:
        ok = (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
              and isinstance(stmt.targets[0], ast.Name))
        if ok:
            try:
                values[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                continue
            except ValueError:
                pass
        raise ConfigError(f"parameters cell, line {stmt.lineno}: expected `name = <plain literal>`, "
                          f"got {ast.get_source_segment(_source(cell), stmt)!r}")
    return values


_ABSOLUTE = re.compile(r"(?<![\w.~])(?:/(?:home|Users|work|tmp|root|mnt|content|private|var|opt)/"
                       r"|[A-Za-z]:\\Users\\)")


def check_notebook(path: str | Path) -> list[str]:
    """Every breach of the notebook conventions in one notebook file (empty if none)."""
    import nbformat

    path = Path(path)
    problems: list[str] = []
    try:
        nb = read_notebook(path)
        nbformat.validate(nb)
    except Exception as exc:
        return [f"not a valid notebook: {exc}"]
    cells = nb.cells
    if len(cells) < 5:
        return [f"expected at least the 5 opening cells, found {len(cells)} cells"]
    title = _source(cells[0])
    if cells[0].cell_type != "markdown" or not title.startswith("# "):
        problems.append("cell 1: expected a markdown title starting with '# '")
    if colab_badge(path.name) not in title:
        problems.append(f"cell 1: missing the Colab badge {colab_badge(path.name)} "
                        "(python -m kdmri notebooks sync)")
    if cells[1].cell_type != "code" or _source(cells[1]) != setup_source():
        problems.append("cell 2: expected the standard set-up cell (python -m kdmri notebooks sync)")
    if cells[2].cell_type != "code" or "environment_report()" not in _source(cells[2]):
        problems.append("cell 3: expected the imports cell printing nb.environment_report()")
    try:
        index, _ = parameters_cell(nb)
        defaults = parameter_defaults(nb)
        if index != 3:
            problems.append(f"the parameters cell is cell {index + 1}; expected cell 4")
        if defaults.get("params_file", "missing") != DEFAULT_PARAMS:
            problems.append(f"parameters cell: expected `params_file = {DEFAULT_PARAMS!r}` "
                            "(the quick profile)")
        set_here = sorted(k for k, v in defaults.items() if k != "params_file" and v is not None)
        if set_here:
            problems.append(f"parameters cell: {set_here} must be None (they defer to params_file)")
        later = "\n".join(_source(c) for c in cells[index + 1:] if c.cell_type == "code")
        for name in defaults:
            if not re.search(rf"\b{re.escape(name)}\b", later):
                problems.append(f"parameter {name!r} is never used after the parameters cell")
    except ConfigError as exc:
        problems.append(str(exc))
    for i, cell in enumerate(cells, 1):
        text = _source(cell)
        if cell.cell_type == "code":
            checked = CHECK_TAG in _tags(cell)
            if not checked and (cell.outputs or cell.execution_count is not None):
                problems.append(f"cell {i}: outputs or an execution count in a cell not tagged "
                                f"{CHECK_TAG!r} (python -m kdmri notebooks strip)")
            if checked:
                if cell.execution_count is None or not cell.outputs:
                    problems.append(f"cell {i}: tagged {CHECK_TAG!r} but not executed with outputs "
                                    "(python -m kdmri notebooks refresh)")
                for out in cell.outputs:
                    if out.get("output_type") == "stream" and out.get("name") == "stdout":
                        text += "".join(out.get("text", ""))
                    elif out.get("output_type") == "execute_result" and set(out.get("data", {})) <= {
                            "text/plain"}:
                        text += "".join(out["data"].get("text/plain", ""))
                    else:
                        problems.append(f"cell {i}: checked outputs must be stdout or plain text, "
                                        f"got {out.get('output_type')} {sorted(out.get('data', {}))}")
        if "injected-parameters" in _tags(cell):
            problems.append(f"cell {i}: a papermill injected-parameters cell was committed")
        if _ABSOLUTE.search(text):
            problems.append(f"cell {i}: contains an absolute path ({_ABSOLUTE.search(text).group(0)}...)")
    if "papermill" in nb.metadata:
        problems.append("notebook metadata: papermill metadata was committed "
                        "(python -m kdmri notebooks strip)")
    return problems


def sync_notebook(path: str | Path, repo_url: str = REPO_URL) -> bool:
    """Rewrite the Colab badge and the set-up cell of ``path`` for ``repo_url``; returns
    whether the file changed."""
    path = Path(path)
    nb = read_notebook(path)
    before = nb.cells[0].source, nb.cells[1].source
    badge = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
    title = _source(nb.cells[0])
    new_badge = colab_badge(path.name, repo_url)
    title = badge.sub(lambda _: new_badge, title) if badge.search(title) else f"{title}\n\n{new_badge}"
    nb.cells[0].source = title
    nb.cells[1].source = setup_source(repo_url)
    if (nb.cells[0].source, nb.cells[1].source) == before:
        return False
    write_notebook(nb, path)
    return True


def opening_cells(name: str, title: str, parameters: Mapping[str, Any], imports: str = "") -> list:
    """The fixed opening cells of a new notebook ``name`` (see the module docstring)."""
    import nbformat.v4 as nbf

    params = "\n".join([f"params_file = {DEFAULT_PARAMS!r}  # a params YAML (path or name in params/): "
                        "the quick CI profile; batch runs set theirs",
                        "# every other value None defers to the params file; a value set here overrides it",
                        *(f"{k} = None" for k in parameters if k != "params_file")])
    config = "cfg = nb.notebook_config(\n    params_file,\n" + "".join(
        f"    {k}={k},\n" for k in parameters if k != "params_file") + ")\ndata_folder = nb.ensure_data(cfg)"
    imports = imports or "from kdmri import tutorial as nb\nfrom kdmri.reporting import plots"
    return [
        nbf.new_markdown_cell(f"# {title}\n\n{colab_badge(name)}"),
        nbf.new_code_cell(setup_source()),
        nbf.new_code_cell(f"%matplotlib inline\n{imports}\n\nprint(nb.environment_report())"),
        nbf.new_code_cell(params, metadata={"tags": [PARAMETERS_TAG]}),
        nbf.new_code_cell(config),
    ]


def new_notebook(path: str | Path, title: str, parameters: Mapping[str, Any] | None = None) -> Path:
    """Write a new notebook with the opening cells; parameters default to ``params/ci.yaml``."""
    import nbformat.v4 as nbf

    path = Path(path)
    if path.exists():
        raise ConfigError(f"{path}: already exists")
    params = dict(parameters) if parameters is not None else read_params(DEFAULT_PARAMS)
    params.pop(NOTEBOOK_KEY, None)
    nb = nbf.new_notebook(cells=opening_cells(path.name, title, params))
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_notebook(nb, path)
    return path


def refresh_notebook(path: Path, kernel_name: str | None = None) -> None:
    """Execute ``path`` with its default parameters and store it back under the output
    rule (only ``nbval-check-output`` cells keep their outputs)."""
    import papermill

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        papermill.execute_notebook(str(path), str(out), cwd=str(path.resolve().parent),
                                   kernel_name=kernel_name, progress_bar=True, log_output=False)
        nb = strip_outputs(read_notebook(out))
    write_notebook(nb, path)

