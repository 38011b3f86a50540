"""The documentation site (``make docs`` = ``python -m kdmri docs``): Sphinx with MyST-NB.

Sources, staged into one folder that mirrors the repository (so relative links between the
files keep working) and built to HTML:

* the **executed** notebooks of a batch run (default ``runs/demo/acc_4x/``, what
  ``make demo`` writes), shown with every output; nothing is executed here. A run that lacks
  a notebook, or holds a cell that failed, stops the build with one message;
* ``README.md`` and the ``docs/*.md`` pages (with ``docs/figures/``);
* an API reference, one page per package, from the docstrings (``sphinx.ext.autodoc``:
  the docstrings are reStructuredText with ``:func:``-style roles, which Sphinx resolves);
* a landing page with the schematics of :mod:`kdmri.reporting.schematics` and what this
  build is made of: the run folder, its parameters and execution time, and the commit.

Links to repository files that are not pages (source files, ``benchmarks/``, ``params/``)
point to the repository on GitHub (:data:`kdmri.tools.notebooks.REPO_URL`). The site's
published address is :func:`kdmri.tools.notebooks.site_url`. The build is written beside the
output folder and swapped in when complete. :mod:`kdmri.tools.sitecheck` opens every page
in Chromium.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from kdmri.errors import DataError
from kdmri.io import atomic_text
from kdmri.paths import project_relative, project_root, runs_dir
from kdmri.tools.notebooks import BRANCH, REPO_URL, discover_notebooks, site_url

#: The run ``make docs`` shows: what ``make demo`` (``python -m kdmri demo``) writes.
DEMO_RUN = ("demo", "acc_4x")

#: The guides of ``docs/``, in the order of the site's navigation (any other page follows).
GUIDES = ("NOTEBOOKS", "ARCHITECTURE", "DATASETS", "SCALING", "FIDELITY", "TESTING", "REFERENCE",
          "SITE")

#: The API reference: page title -> modules (package prefixes) it documents.
API_PAGES = {
    "base": ("kdmri.errors", "kdmri.paths", "kdmri.io", "kdmri.locks", "kdmri.registry",
             "kdmri.config"),
    "physics": ("kdmri.physics", "kdmri.metrics"),
    "data": ("kdmri.data", "kdmri.datasets"),
    "models": ("kdmri.models", "kdmri.checkpoint"),
    "distill": ("kdmri.distill",),
    "training": ("kdmri.training",),
    "evaluation": ("kdmri.evaluation",),
    "reporting": ("kdmri.reporting",),
    "tutorial": ("kdmri.tutorial", "kdmri.runs"),
    "tools": ("kdmri.tools",),
}

_LINK = re.compile(r"(\]\()([^)\s]+)(\))")
_EXTERNAL = ("http://", "https://", "mailto:", "#", "data:")


def default_run() -> Path:
    """``runs/demo/acc_4x``: the executed notebooks of ``make demo``."""
    return runs_dir().joinpath(*DEMO_RUN)


def executed_notebooks(run: Path | str) -> list[Path]:
    """The executed copy in ``run`` of every numbered notebook of ``notebooks/``, in order.

    Raises :class:`~kdmri.errors.DataError` naming the run when it holds none of them, when one
    is missing, or when a cell of one failed (an ``error`` output)."""
    run = Path(run)
    names = [p.name for p in discover_notebooks()]
    if not run.is_dir() or not any((run / n).is_file() for n in names):
        raise DataError(f"{project_relative(run)}: no executed notebooks; run `make demo` "
                        "(python -m kdmri demo) first, or name a batch run folder with --run")
    missing = [n for n in names if not (run / n).is_file()]
    if missing:
        raise DataError(f"{project_relative(run)}: no executed {', '.join(missing)} (expected every "
                        "notebook of notebooks/; rerun the batch for them)")
    failed = [f"{n} (cell {i}: {out.get('ename', 'error')})" for n in names
              for i, cell in enumerate(json.loads((run / n).read_text())["cells"])
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    if failed:
        raise DataError(f"{project_relative(run)}: failed cells in {'; '.join(failed)}; the site "
                        "shows only notebooks that ran through")
    return [run / n for n in names]


def rewrite_links(text: str, origin: str, staged: set[str], repo_url: str = REPO_URL) -> str:
    """Markdown links of the file at repository path ``origin``: a relative link to a file of
    ``staged`` (repository paths) stays; any other relative link points to the repository on
    GitHub, so that no link of the site is broken."""

    def fix(match: re.Match) -> str:
        target = match.group(2)
        if target.startswith(_EXTERNAL) or "://" in target:
            return match.group(0)
        path, _, fragment = target.partition("#")
        resolved = _normalise(str(Path(origin).parent / path))
        if resolved in staged or resolved.startswith("../"):
            return match.group(0)
        kind = "blob" if Path(resolved).suffix else "tree"
        url = f"{repo_url.rstrip('/')}/{kind}/{BRANCH}/{resolved}" + (f"#{fragment}" if fragment else "")
        return f"{match.group(1)}{url}{match.group(3)}"

    return _LINK.sub(fix, text)


def _normalise(path: str) -> str:
    parts: list[str] = []
    for part in Path(path).parts:
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            else:
                parts.append(part)
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(run: Path | str) -> dict:
    """What a build shows: the run folder, its parameters (``params.yaml``), when its
    notebooks ran (papermill's end times) and the commit of the checkout building the site."""
    import yaml

    run = Path(run)
    params_file = run / "params.yaml"
    params = yaml.safe_load(params_file.read_text()) if params_file.is_file() else {}
    ends = []
    for path in sorted(run.glob("*.ipynb")):
        end = json.loads(path.read_text()).get("metadata", {}).get("papermill", {}).get("end_time")
        if end:
            ends.append(end)
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else False
    return {"run": project_relative(run), "params": params or {},
            "executed": max(ends)[:19].replace("T", " ") if ends else "unknown",
            "commit": (commit + (" (with uncommitted changes)" if dirty else "")) if commit else
            "unknown (not a git checkout)",
            "built": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _stage_notebook(src: Path, dst: Path, staged: set[str]) -> None:
    nb = json.loads(src.read_text())
    root = str(project_root().resolve()) + "/"
    for cell in nb["cells"]:
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown":
            text = rewrite_links(text, f"notebooks/{src.name}", staged)
        elif "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            text = text.replace(root, "")  # the run's params file, named relative to the project
        cell["source"] = text
    dst.write_text(json.dumps(nb))


def _url(url: str) -> str:
    """A link to ``url``; a placeholder address (``<org>``) as code, not a link."""
    return f"`{url}`" if "<" in url else f"[`{url}`]({url})"


def _landing(info: dict, notebooks: list[Path], guides: list[str], figures: list[Path]) -> str:
    params = info["params"]
    setting = ", ".join(f"{k} {params[k]}" for k in ("dataset", "acc", "epochs", "seed") if k in params)
    lines = [
        "# kdmri: knowledge distillation for MRI reconstruction", "",
        "KD-MRI (Murugesan et al., MIDL 2020) and SFT-KD-Recon (Matcha et al., 2023) reproduced on "
        "a DC-CNN teacher and student, with super-resolution (VDSR), ablations and paired "
        "statistics. The tutorial notebooks below are shown **executed**, with every figure; the "
        "guides explain the design; the API reference is generated from the docstrings.", "",
        "```{admonition} This build", "",
        f"* notebooks executed in `{info['run']}`" + (f" ({setting})" if setting else "")
        + f", last one finished {info['executed']}",
        f"* site built from commit `{info['commit']}` on {info['built']}",
        f"* repository: {_url(REPO_URL)}, published at {_url(site_url())}", "```", "",
    ]
    for fig in figures:
        lines += [f"![{fig.stem}](figures/{fig.name})", ""]
    lines += ["```{toctree}", ":caption: Tutorial notebooks", ":maxdepth: 1", "",
              *[f"notebooks/{p.stem}" for p in notebooks], "```", "",
              "```{toctree}", ":caption: Guides", ":maxdepth: 1", "", "README",
              *[f"docs/{g}" for g in guides], "```", "",
              "```{toctree}", ":caption: API reference", ":maxdepth: 2", "", "api/index", "```", ""]
    return "\n".join(lines)


def _modules() -> list[str]:
    import pkgutil

    import kdmri

    found = [("kdmri", True)] + [(m.name, m.ispkg) for m in pkgutil.walk_packages(kdmri.__path__, "kdmri.")]
    return [(n, pkg) for n, pkg in found if not n.endswith("__main__")]


def _api_pages(folder: Path) -> None:
    folder.mkdir(parents=True)
    modules = _modules()
    index = ["API reference", "=" * 13, "", "Generated from the docstrings, one page per layer "
             "(docs/ARCHITECTURE.md).", "", ".. toctree::", "   :maxdepth: 1", ""]
    for page, prefixes in API_PAGES.items():
        chosen = [(m, pkg) for m, pkg in modules
                  if any(m == p or m.startswith(p + ".") for p in prefixes)]
        body = [page, "=" * len(page), ""]
        for mod, package in chosen:  # a package's re-exports are documented in their own module
            body += [mod, "-" * len(mod), "", f".. automodule:: {mod}"]
            body += ["", ""] if package else ["   :members:", ""]
        (folder / f"{page}.rst").write_text("\n".join(body))
        index.append(f"   {page}")
    (folder / "index.rst").write_text("\n".join(index) + "\n")


def stage_sources(run: Path | str, src: Path) -> list[Path]:
    """Write the site's sources into ``src`` (emptied first): the run's executed notebooks,
    README, docs/, the schematics, the API pages and the landing page. Returns the staged
    notebooks."""
    from kdmri.reporting.schematics import write_schematics

    notebooks = executed_notebooks(run)
    root = project_root()
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    guides_found = sorted(p.stem for p in (root / "docs").glob("*.md"))
    guides = [g for g in GUIDES if g in guides_found] + [g for g in guides_found if g not in GUIDES]
    staged = {"README.md", *(f"docs/{g}.md" for g in guides),
              *(f"notebooks/{p.name}" for p in notebooks),
              *(f"docs/figures/{p.name}" for p in (root / "docs" / "figures").glob("*.png"))}
    for path in notebooks:
        _stage_notebook(path, src / "notebooks" / path.name, staged)
    (src / "docs" / "figures").mkdir(parents=True)
    for rel in sorted(staged):
        if rel.endswith(".md"):
            (src / rel).write_text(rewrite_links((root / rel).read_text(), rel, staged))
        elif rel.startswith("docs/figures/"):
            shutil.copy2(root / rel, src / rel)
    figures = write_schematics(src / "figures")
    _api_pages(src / "api")
    (src / "index.md").write_text(_landing(provenance(run), notebooks, guides, figures))
    return [src / "notebooks" / p.name for p in notebooks]


def sphinx_settings() -> dict:
    """The Sphinx configuration (there is no conf.py: :func:`build_site` passes these)."""
    import kdmri

    return {
        "project": "kdmri", "author": "kdmri contributors", "release": kdmri.__version__,
        "extensions": ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.mathjax"],
        "root_doc": "index", "html_theme": "furo", "html_title": f"kdmri {kdmri.__version__}",
        "html_baseurl": site_url(), "html_show_sourcelink": False, "html_copy_source": False,
        "nb_execution_mode": "off",  # the notebooks come executed from the run
        "myst_enable_extensions": ["dollarmath", "amsmath"], "myst_heading_anchors": 3,
        "autodoc_member_order": "bysource", "autodoc_typehints": "description",
        "suppress_warnings": ["myst.header", "toc.not_included", "misc.highlighting_failure"],
        "exclude_patterns": [], "language": "en",
    }


def build_site(run: Path | str | None = None, out: Path | str | None = None,
               verbose: bool = False) -> dict:
    """Build the site from the executed notebooks of ``run`` (default :func:`default_run`)
    into ``out`` (default ``build/site``): staged in ``<out>.src``, built in ``<out>.tmp``,
    then swapped in. Returns ``{"index", "pages", "warnings", "provenance"}``."""
    from sphinx.application import Sphinx
    from sphinx.util.console import nocolor

    run = Path(run) if run is not None else default_run()
    out = Path(out) if out is not None else project_root() / "build" / "site"
    executed_notebooks(run)  # one clear message before anything is written
    src, tmp = out.with_name(out.name + ".src"), out.with_name(out.name + ".tmp")
    stage_sources(run, src)
    shutil.rmtree(tmp, ignore_errors=True)
    warnings = io.StringIO()
    nocolor()
    app = Sphinx(str(src), None, str(tmp), str(src / ".doctrees"), "html",
                 confoverrides=sphinx_settings(), status=sys.stdout if verbose else None,
                 warning=warnings, freshenv=True)
    app.build()
    if app.statuscode:
        raise DataError(f"{project_relative(src)}: Sphinx failed (status {app.statuscode}): "
                        f"{warnings.getvalue().strip().splitlines()[-1:]}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    pages = sorted(out.rglob("*.html"))
    found = [w for w in warnings.getvalue().splitlines() if w.strip()]
    atomic_text(out.with_name(out.name + ".warnings.txt"), "\n".join(found) + "\n")
    return {"index": out / "index.html", "pages": pages, "warnings": found, "provenance": provenance(run)}


def register_cli(sub) -> None:
    p = sub.add_parser("docs", help="build the documentation site (build/site/index.html) from the "
                       "executed notebooks of `make demo`, the docs/ pages and the docstrings")
    p.add_argument("--run", type=Path, default=None,
                   help="batch run folder of executed notebooks (default: runs/demo/acc_4x)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: build/site)")

    def run(args) -> int:
        res = build_site(args.run, args.out)
        info = res["provenance"]
        print(f"site: {res['index']} ({len(res['pages'])} pages) from {info['run']} (executed "
              f"{info['executed']}), commit {info['commit']}; {len(res['warnings'])} Sphinx warnings "
              f"(mostly docstring layout) in {res['index'].parent}.warnings.txt")
        return 0

    p.set_defaults(func=run)
