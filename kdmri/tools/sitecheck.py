"""Open every page of a built site in headless Chromium and check what a reader would see.

:func:`check_site` serves the site on ``127.0.0.1`` (``http.server``), loads each page with
``chromium --dump-dom`` (the DOM after the page's scripts ran) and reports

* a **broken link**: a link of the site (``<a href>``, stylesheet, script) whose target is not
  served, or whose ``#fragment`` names no element of the target page;
* a **missing image**: an ``<img>`` of the site that is not served or does not decode as an
  image;
* **error output**: a notebook error output (a traceback), standard-error output naming an
  error, or a Python traceback's first line anywhere on a page.

Links and images on other hosts (badges, the repository on GitHub, MathJax's CDN) are not
fetched: the check runs offline. :func:`screenshot` saves a PNG of a page.
:func:`ensure_chromium` installs Debian's ``chromium`` with apt-get when it is missing and
the process runs as root.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

#: Flags of every Chromium call (headless, no network of its own, a throw-away profile is added).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=4000")

#: Executable names tried, in order.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class ChromiumUnavailable(RuntimeError):
    """Chromium is missing and cannot be installed here (the reason is the message)."""


def find_chromium() -> str | None:
    """The path of a Chromium executable on ``PATH``, else ``None``."""
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def ensure_chromium() -> str:
    """A Chromium executable: the installed one, else Debian's ``chromium`` installed with
    ``apt-get`` (as root). Raises :class:`ChromiumUnavailable` saying why when neither works."""
    found = find_chromium()
    if found:
        return found
    if not shutil.which("apt-get"):
        raise ChromiumUnavailable("chromium is not installed and there is no apt-get to install it")
    if os.geteuid() != 0:
        raise ChromiumUnavailable("chromium is not installed and installing it with apt-get needs root "
                                  "(sudo apt-get install chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
        if done.returncode:
            raise ChromiumUnavailable(f"{' '.join(cmd)} failed: {done.stderr.strip()[-300:]}")
    found = find_chromium()
    if not found:
        raise ChromiumUnavailable("apt-get installed chromium but no chromium executable is on PATH")
    return found


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@contextlib.contextmanager
def serve(folder: Path | str):
    """Serve ``folder`` on ``127.0.0.1`` (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _chromium(chromium: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="kdmri-chromium-") as profile:
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def dump_dom(chromium: str, url: str) -> str:
    """The DOM of ``url`` after its scripts ran (``chromium --dump-dom``)."""
    done = _chromium(chromium, "--dump-dom", url)
    if done.returncode or "<html" not in done.stdout.lower():
        raise RuntimeError(f"chromium could not open {url}: {done.stderr.strip()[-300:]}")
    return done.stdout


def screenshot(chromium: str, url: str, path: Path | str, size: tuple[int, int] = (1280, 1600)) -> Path:
    """Save a PNG of ``url`` as Chromium renders it at ``size`` (width, height)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _chromium(chromium, f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", url)
    if not path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {url}: {done.stderr.strip()[-300:]}")
    return path


class PageParser(HTMLParser):
    """What :func:`check_site` needs from a page: element ids, links, images, error outputs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.images: list[str] = []
        self.errors: list[str] = []
        self._stderr_depth = 0
        self._depth = 0
        self._stderr_text: list[str] = []
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        self._depth += 1
        for key in ("id", "name"):
            if a.get(key) and (key == "id" or tag == "a"):
                self.ids.add(a[key])
        classes = (a.get("class") or "").split()
        if "traceback" in classes:
            self.errors.append("a notebook error output (traceback)")
        if "stderr" in classes and not self._stderr_depth:
            self._stderr_depth = self._depth
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "link" and a.get("href") and "stylesheet" in (a.get("rel") or ""):
            self.links.append(a["href"])
        elif tag == "script" and a.get("src"):
            self.links.append(a["src"])
        elif tag == "img" and a.get("src"):
            self.images.append(a["src"])

    def handle_endtag(self, tag) -> None:
        if self._stderr_depth and self._depth == self._stderr_depth:
            text = "".join(self._stderr_text)
            if any(w in text for w in ("Error", "Traceback", "Exception")):
                self.errors.append(f"standard-error output: {text.strip()[:160]!r}")
            self._stderr_depth, self._stderr_text = 0, []
        self._depth -= 1

    def handle_data(self, data) -> None:
        self._text.append(data)
        if self._stderr_depth:
            self._stderr_text.append(data)

    def close(self) -> None:
        super().close()
        if "Traceback (most recent call last)" in "".join(self._text):
            self.errors.append("the text 'Traceback (most recent call last)'")


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


def _fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, "", b""


def _is_image(content_type: str, body: bytes) -> bool:
    if content_type.startswith("image/svg") or body.lstrip()[:5] in (b"<svg ", b"<?xml"):
        return b"<svg" in body[:2000]
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(body)) as img:
            img.verify()
        return True
    except Exception:  # noqa: BLE001  (any decoder error means: not an image)
        return False


def check_site(folder: Path | str, chromium: str | None = None, workers: int = 3) -> dict:
    """Open every ``*.html`` page of the built site ``folder`` in Chromium and check its links,
    images and outputs (module docstring). Returns ``{"pages", "problems", "seconds", "links",
    "images"}``; ``problems`` lists ``"<page>: <what>"``, empty when the site is sound."""
    folder = Path(folder)
    chromium = chromium or ensure_chromium()
    pages = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.html"))
    if not pages:
        raise FileNotFoundError(f"{folder}: no HTML pages (build the site first: python -m kdmri docs)")
    t0 = time.perf_counter()
    problems: list[str] = []
    with serve(folder) as base:
        host = urlparse(base).netloc
        with ThreadPoolExecutor(workers) as pool:
            doms = dict(zip(pages, pool.map(lambda p: parse_page(dump_dom(chromium, base + p)), pages)))
        fetched: dict[str, tuple[int, str, bytes]] = {}

        def get(url: str) -> tuple[int, str, bytes]:
            if url not in fetched:
                fetched[url] = _fetch(url)
            return fetched[url]

        n_links = n_images = 0
        for page, dom in doms.items():
            url = base + page
            problems += [f"{page}: {e}" for e in dom.errors]
            for href in dom.links:
                target, fragment = urldefrag(urljoin(url, href))
                if urlparse(target).netloc != host:
                    continue
                n_links += 1
                status = get(target)[0]
                if status != 200:
                    problems.append(f"{page}: broken link {href} (HTTP {status})")
                    continue
                rel = urlparse(target).path.lstrip("/") or "index.html"
                rel = rel + "index.html" if rel.endswith("/") else rel
                ids = doms[rel].ids if rel in doms else None
                if fragment and ids is not None and fragment not in ids:
                    problems.append(f"{page}: link {href}: no element #{fragment} on {rel}")
            for src in dom.images:
                target = urljoin(url, src)
                if src.startswith("data:") or urlparse(target).netloc != host:
                    continue
                n_images += 1
                status, kind, body = get(target)
                if status != 200 or not _is_image(kind, body):
                    problems.append(f"{page}: missing image {src} (HTTP {status}, {kind or 'no type'})")
    return {"pages": pages, "problems": problems, "seconds": time.perf_counter() - t0,
            "links": n_links, "images": n_images}
