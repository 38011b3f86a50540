"""Files fetched from a URL and verified against a sha256: the one fetch-and-verify.

Used by the pretrained checkpoints (:mod:`kdmri.pretrained`) and the reference masks
(:mod:`kdmri.physics.reference_masks`). A *source* is

* an ``http://`` / ``https://`` / ``file://`` URL, read with :mod:`urllib`;
* a local path (absolute, or relative to a ``base`` folder, e.g. the folder of the
  manifest naming it).

:func:`fetch` streams the source into a temporary file beside the destination (the atomic
writer of :mod:`kdmri.io`), checks its size and sha256 -- and, when given, a ``validate``
function on the verified file -- and only then renames it into place. A wrong hash, a
missing file, an unreachable URL or a failed validation is one :class:`~kdmri.errors.DataError`
naming the file, the source and what was expected, and leaves nothing behind.
A destination already there with the expected hash is used as it is (the cache).

Downloaded files are cached under :func:`cache_dir`: ``$KDMRI_CACHE``, else
``$XDG_CACHE_HOME/kdmri``, else ``~/.cache/kdmri``.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from tqdm.auto import tqdm

from kdmri.errors import ConfigError, DataError
from kdmri.io import atomic_path

#: Environment variable naming the download cache folder.
CACHE_ENV = "KDMRI_CACHE"
#: Seconds to wait for a server before giving up.
TIMEOUT_S = 60
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def cache_dir() -> Path:
    """Folder of downloaded files (``$KDMRI_CACHE``, ``$XDG_CACHE_HOME/kdmri``, ``~/.cache/kdmri``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "kdmri"


def check_sha256(value, where: str) -> str:
    """``value`` as a lower-case sha256 hex digest, else a :class:`ConfigError` naming ``where``."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value.strip().lower()):
        raise ConfigError(f"{where}: expected a sha256 hex digest (64 hex digits), got {value!r}")
    return value.strip().lower()


def sha256_of(path: Path | str) -> str:
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_url(source: str) -> bool:
    return urlparse(str(source)).scheme in ("http", "https", "file")


def local_source(source: str | Path, base: Path | None = None) -> Path | None:
    """The local file a source names (a path, relative to ``base``, or a ``file://`` URL);
    ``None`` for an http(s) URL."""
    text = str(source)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("http", "https"):
        return None
    path = Path(text).expanduser()
    return path if path.is_absolute() or base is None else base / path


def _open(source: str, what: str):
    try:
        return urllib.request.urlopen(source, timeout=TIMEOUT_S)  # noqa: S310 (schemes checked)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{what}: {source}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"{what}: cannot fetch {source} ({reason})") from None


def _mismatch(what: str, source, got: str, expected: str, size: int) -> DataError:
    return DataError(f"{what}: {source} has sha256 {got} ({size} bytes); expected sha256 {expected}: "
                     "a different or damaged file, nothing stored")


def verify(path: Path | str, sha256: str, what: str, size: int | None = None) -> Path:
    """``path`` when it exists with ``sha256`` (and ``size``), else one :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what}: {path}: file not found")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DataError(f"{what}: {path} is {actual_size} bytes; expected {size} bytes (sha256 {sha256})")
    got = sha256_of(path)
    if got != sha256:
        raise DataError(f"{what}: {path} has sha256 {got}; expected sha256 {sha256}")
    return path


def fetch(source: str | Path, dest: Path | str, sha256: str, what: str, *, size: int | None = None,
          base: Path | None = None, validate: Callable[[Path], None] | None = None,
          progress: bool = False) -> Path:
    """Copy or download ``source`` to ``dest``, verified; returns ``dest``.

    ``dest`` already holding ``sha256`` is returned at once. Otherwise the source is written
    to a temporary file beside ``dest``; its size (when ``size`` is given) and sha256 are
    checked, then ``validate(temporary path)`` runs (it raises :class:`DataError` to refuse the
    file); only a file passing all of them is renamed to ``dest``. ``what`` names the file in
    messages (``"pretrained 'demo-student'"``).
    """
    dest = Path(dest)
    sha256 = check_sha256(sha256, what)
    if dest.is_file() and sha256_of(dest) == sha256:
        return dest
    local = local_source(source, base)
    shown = source if local is None or is_url(str(source)) else local
    if local is not None and not local.is_file():
        raise DataError(f"{what}: {local}: file not found (expected sha256 {sha256})")
    with atomic_path(dest) as tmp:
        digest, written = hashlib.sha256(), 0
        reader = open(local, "rb") if local is not None else _open(str(source), what)
        with reader, open(tmp, "wb") as out:
            total = size or int(getattr(reader, "headers", {}).get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress,
                      leave=False) as bar:
                for chunk in iter(lambda: reader.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
                    if size is not None and written > size:
                        break
        if size is not None and written != size:
            raise DataError(f"{what}: {shown} gave {'more than ' if written > size else ''}{written} "
                            f"bytes; expected {size} bytes (sha256 {sha256}): nothing stored")
        got = digest.hexdigest()
        if got != sha256:
            raise _mismatch(what, shown, got, sha256, written)
        if validate is not None:
            validate(tmp)
    return dest

