"""The documentation site (kdmri.tools.site) and its check in a real browser
(kdmri.tools.sitecheck).

The fast tests cover the builder's inputs and the page checks on hand-written HTML. The
browser test (marker ``site``) executes every notebook once with the quick profile (the nbval
parameters: papermill on the notebooks' defaults, ``params/ci.yaml``) into a temporary runs
folder, builds the site from it, opens every page in headless Chromium served from
127.0.0.1, asserts no broken link, no missing image and no error output, and saves
screenshots of the landing page and of notebook 04's page under ``build/site-test/``.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
import time

import nbformat
import pytest

from kdmri.errors import DataError
from kdmri.paths import project_root
from kdmri.tools import notebooks as nbt
from kdmri.tools import site, sitecheck
from kdmri.tools.cli import main

SCREENSHOTS = project_root() / "build" / "site-test"


def _fake_run(folder, error_in=None):
    """A run folder holding every numbered notebook (as committed: no outputs), one of them
    with a failed cell when ``error_in`` names it."""
    folder.mkdir(parents=True)
    for path in nbt.discover_notebooks():
        nb = nbformat.read(path, as_version=4)
        if path.name == error_in:
            nb.cells[2].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError",
                                                          evalue="division by zero", traceback=[])]
        nbformat.write(nb, folder / path.name)
    return folder


def test_no_run_is_one_clear_line(tmp_path, capsys):
    run = tmp_path / "runs" / "demo" / "acc_4x"
    code = main(["docs", "--run", str(run), "--out", str(tmp_path / "site")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "acc_4x: no executed notebooks" in err and "make demo" in err
    assert not (tmp_path / "site").exists() and not (tmp_path / "site.src").exists()
    assert site.default_run() == project_root() / "runs" / "demo" / "acc_4x"


def test_a_run_missing_a_notebook_or_with_a_failed_cell_is_refused(tmp_path):
    run = _fake_run(tmp_path / "run")
    assert [p.name for p in site.executed_notebooks(run)] == [p.name for p in nbt.discover_notebooks()]
    last = nbt.discover_notebooks()[-1].name
    (run / last).unlink()
    with pytest.raises(DataError, match=f"no executed {last}"):
        site.executed_notebooks(run)
    bad = _fake_run(tmp_path / "bad", error_in="02_dc_cnn.ipynb")
    with pytest.raises(DataError, match=r"02_dc_cnn.ipynb \(cell 2: ZeroDivisionError\)"):
        site.executed_notebooks(bad)


def test_links_to_files_that_are_not_pages_go_to_the_repository():
    staged = {"README.md", "docs/NOTEBOOKS.md", "notebooks/04_kd_mri.ipynb"}
    text = ("[a](NOTEBOOKS.md) [b](../notebooks/04_kd_mri.ipynb#results) [c](../kdmri/io.py) "
            "[d](../benchmarks/) [e](https://x.org/y) [f](#local) [g](../params/ci.yaml#L3)")
    out = site.rewrite_links(text, "docs/SCALING.md", staged, repo_url="https://github.com/me/kdmri")
    assert out == ("[a](NOTEBOOKS.md) [b](../notebooks/04_kd_mri.ipynb#results) "
                   "[c](https://github.com/me/kdmri/blob/main/kdmri/io.py) "
                   "[d](https://github.com/me/kdmri/tree/main/benchmarks) [e](https://x.org/y) [f](#local) "
                   "[g](https://github.com/me/kdmri/blob/main/params/ci.yaml#L3)")


def test_site_address_is_derived_from_repo_url_and_linked_from_the_readme():
    assert nbt.site_url("https://github.com/someone/kdmri") == "https://someone.github.io/kdmri/"
    readme = (project_root() / "README.md").read_text()
    assert f"]({nbt.site_url()})" in readme and nbt.docs_badge() in nbt.readme_badges()
    assert site.sphinx_settings()["html_baseurl"] == nbt.site_url()


def test_page_checks_find_errors_links_and_ids():
    page = sitecheck.parse_page(
        '<html><body><h2 id="top">t</h2><a name="old"></a><a href="x.html#top">x</a>'
        '<img src="_images/a.png"><div class="output stderr"><pre>UserWarning: fine</pre></div>'
        '<div class="output stderr"><pre>ValueError: boom</pre></div>'
        '<div class="output traceback"><pre>...</pre></div></body></html>')
    assert page.ids == {"top", "old"} and page.links == ["x.html#top"] and page.images == ["_images/a.png"]
    assert page.errors == ["standard-error output: 'ValueError: boom'", "a notebook error output (traceback)"]
    assert not sitecheck.parse_page("<html><p>all good</p></html>").errors
    assert sitecheck.parse_page("<pre>Traceback (most recent call last):\n</pre>").errors


def test_page_checks_on_a_small_site(tmp_path):
    """check_site on a hand-made site: one good page, one with a broken link, a missing
    anchor and a missing image (Chromium needed: installed when missing and possible)."""
    try:
        chromium = sitecheck.ensure_chromium()
    except sitecheck.ChromiumUnavailable as exc:
        pytest.skip(f"no Chromium: {exc}")
    (tmp_path / "index.html").write_text(
        '<html><body><h1 id="a">A</h1><a href="b.html#b">b</a><a href="#a">a</a></body></html>')
    (tmp_path / "b.html").write_text(
        '<html><body><h1 id="b">B</h1><a href="nowhere.html">x</a><a href="index.html#zzz">y</a>'
        '<img src="missing.png"><a href="https://example.org/">external, not fetched</a></body></html>')
    res = sitecheck.check_site(tmp_path, chromium)
    assert res["pages"] == ["b.html", "index.html"]
    assert sorted(res["problems"]) == ["b.html: broken link nowhere.html (HTTP 404)",
                                       "b.html: link index.html#zzz: no element #zzz on index.html",
                                       "b.html: missing image missing.png (HTTP 404, no type)"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Every notebook executed once with the quick profile (the nbval parameters) into a
    temporary runs folder, with its own experiments folder; two at a time, as the graph
    allows (7.3 min one at a time on an AVX2 CPU, the longest set-up of the suite)."""
    root = tmp_path_factory.mktemp("site-run")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kdmri", "batch", "--params", "ci", "--jobs", "2",
                           "--out", str(root / "runs"),
                           "--set", f"experiments_root={root / 'experiments'}", "--no-progress"],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "runs" / "demo" / "acc_4x", time.perf_counter() - t0


@pytest.mark.site
def test_site_opens_in_chromium_without_broken_links_or_errors(quick_run, tmp_path, capsys):
    try:
        chromium = sitecheck.ensure_chromium()
    except sitecheck.ChromiumUnavailable as exc:
        pytest.skip(f"no Chromium: {exc}")
    run, run_seconds = quick_run
    t0 = time.perf_counter()
    res = site.build_site(run, tmp_path / "site")
    build_seconds = time.perf_counter() - t0
    folder = res["index"].parent
    names = {p.relative_to(folder).as_posix() for p in res["pages"]}
    assert {"index.html", "README.html", "api/index.html"} <= names
    assert {f"notebooks/{p.stem}.html" for p in nbt.discover_notebooks()} <= names
    assert {f"docs/{p.stem}.html" for p in (project_root() / "docs").glob("*.md")} <= names
    landing = (folder / "index.html").read_text()
    # which run, which commit (the hash: Sphinx splits "abc1234 (with uncommitted changes)"
    # into one span per word, so the whole string is not in a dirty checkout's page)
    assert "runs/demo/acc_4x" in landing and res["provenance"]["commit"].split()[0] in landing
    assert html.escape(nbt.REPO_URL) in landing and html.escape(nbt.site_url()) in landing
    checked = sitecheck.check_site(folder, chromium)
    assert checked["pages"] == sorted(names)
    assert not checked["problems"], "\n".join(checked["problems"])
    nb04 = (folder / "notebooks" / "04_kd_mri.html").read_text()
    assert nb04.count("<img") >= 4 and checked["images"] >= 20  # the executed figures are there
    assert "kdmri.tools.site.build_site" in (folder / "api" / "tools.html").read_text()  # API reference
    with sitecheck.serve(folder) as base:
        shots = [sitecheck.screenshot(chromium, base + page, SCREENSHOTS / name, size)
                 for page, name, size in (
            ("index.html", "landing.png", (1280, 1600)),
            ("notebooks/04_kd_mri.html", "notebook_04.png", (1280, 4200)))]
    assert all(p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 20_000 for p in shots)
    summary = (f"site test: notebooks executed in {run_seconds:.0f} s, site built in {build_seconds:.0f} s, "
               f"{len(checked['pages'])} pages / {checked['links']} links / {checked['images']} images "
               f"checked in Chromium in {checked['seconds']:.0f} s; screenshots: "
               + ", ".join(map(str, shots)))
    with capsys.disabled():
        print(f"\n{summary}")
    (SCREENSHOTS / "summary.json").write_text(json.dumps({"summary": summary}))
