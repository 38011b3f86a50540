"""Pretrained checkpoints by name, over manifests, fetched and verified by sha256.

``kdmri.pretrained.load("NAME")`` returns the network of a published checkpoint;
``--checkpoint pretrained:NAME`` (``reconstruct``, ``export``, ``evaluate``) and
``teacher_checkpoint: pretrained:NAME`` go through the one resolver,
:func:`resolve_checkpoint`. The names come from *manifests*: the package's own
(``kdmri/pretrained/manifest.yaml``, the checkpoints this repository publishes), then the
files named by ``$KDMRI_MANIFESTS`` (separated by :data:`os.pathsep`), then those passed as
``manifests=``. A manifest is YAML::

    root: ../..                 # optional: folder of relative paths, relative to the manifest
    checkpoints:
      demo-student:
        url: https://example.org/demo_student.pt   # https://, file://, or a path
        sha256: 9a42...                            # required
        size: 201234                               # optional, bytes
        config: params/demo_4x.yaml                # optional: what trained it,
        command: python -m kdmri train ...         # how, at which commit,
        commit: 900b24e...                         # and the model card text
        card: "..."
        stage: student                             # optional: the stage evaluating it,
        acc: 4x                                    # its acceleration and seed,
        seed: 42
        metrics: {slab: {psnr: 31.2, ssim: 0.93}}  # and its figures per test set

A URL is downloaded once into ``<cache>/pretrained/`` (:func:`kdmri.fetch.cache_dir`) through
:func:`kdmri.fetch.fetch` (temporary file, sha256 checked, then renamed); a path -- such as
a file inside the repository -- is verified where it is. Unknown names, bad manifests
(naming the entry and field), missing files and wrong hashes are one clear error each.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from kdmri.config import read_yaml_mapping
from kdmri.errors import ConfigError
from kdmri.fetch import cache_dir, check_sha256, fetch, local_source, verify

#: The package's manifest: the checkpoints this repository publishes.
MANIFEST = Path(__file__).with_name("manifest.yaml")
#: Folder of the study's published checkpoints and its ``summary.json`` (kdmri.reporting.published).
STUDY_FOLDER = MANIFEST.parent / "study"
STUDY_SUMMARY = STUDY_FOLDER / "summary.json"
#: Environment variable naming more manifest files (separated by ``os.pathsep``).
MANIFEST_ENV = "KDMRI_MANIFESTS"
#: Prefix of a checkpoint given by name: ``pretrained:NAME``.
PREFIX = "pretrained:"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FIELDS = {"url": str, "sha256": str, "size": int, "config": (str, dict), "command": str,
           "commit": str, "card": str, "description": str, "stage": str, "acc": str, "seed": int,
           "metrics": dict}
_REQUIRED = ("url", "sha256")


@dataclass(frozen=True)
class Entry:
    """One checkpoint of a manifest (see the module docstring for the fields)."""

    name: str
    url: str
    sha256: str
    manifest: Path
    base: Path  # folder relative paths are resolved against
    size: int | None = None
    config: str | dict | None = None
    command: str | None = None
    commit: str | None = None
    card: str | None = None
    description: str | None = None
    stage: str | None = None  # the stage that evaluates it (teacher, student, kd, sr-teacher...)
    acc: str | None = None
    seed: int | None = None
    metrics: dict | None = None  # {test set: {psnr, ssim, nmse}} measured when published

    @property
    def is_remote(self) -> bool:
        return urlparse(self.url).scheme in ("http", "https", "file")

    def card_text(self) -> str:
        """The model card: the manifest's ``card`` text, with how it was trained."""
        parts = [f"# {self.name}", self.description, (self.card or "(no model card text)").strip()]
        facts = [f"- {label}: {value}" for label, value in (
            ("config", self.config), ("command", self.command), ("commit", self.commit),
            ("sha256", self.sha256), ("source", self.url)) if value]
        return "\n\n".join([p for p in parts if p] + ["\n".join(facts)]) + "\n"


def _entry(name, fields, manifest: Path, base: Path) -> Entry:
    where = f"{manifest}: checkpoint {name!r}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{manifest}: checkpoint name {name!r}: expected letters, digits, '.', '_' "
                          "or '-' (it names a file and a folder)")
    if not isinstance(fields, Mapping):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(fields).__name__}")
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(_FIELDS)}")
    for field in _REQUIRED:
        if not fields.get(field):
            raise ConfigError(f"{where}: field '{field}' is missing; required: {list(_REQUIRED)}")
    for field, value in fields.items():
        kind = _FIELDS[field]
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ConfigError(f"{where}: field '{field}' = {value!r}: expected a {names}")
    if fields.get("size") is not None and fields["size"] < 1:
        raise ConfigError(f"{where}: field 'size' = {fields['size']!r}: expected a positive byte count")
    sha = check_sha256(fields["sha256"], f"{where}: field 'sha256'")
    scheme = urlparse(fields["url"]).scheme
    if scheme and len(scheme) > 1 and scheme not in ("http", "https", "file"):
        raise ConfigError(f"{where}: field 'url' = {fields['url']!r}: expected an http(s):// or file:// "
                          "URL or a path")
    return Entry(name=name, manifest=manifest, base=base, **{**fields, "sha256": sha})


def read_manifest(path: Path | str) -> dict[str, Entry]:
    """The entries of one manifest file, checked (a :class:`ConfigError` names the entry and field)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"manifest {path}: file not found")
    data = read_yaml_mapping(path, "manifest", "a mapping with 'checkpoints' (and 'root')")
    unknown = sorted(set(data) - {"root", "checkpoints"})
    if unknown:
        raise ConfigError(f"manifest {path}: unknown key(s) {unknown}; expected 'checkpoints' and 'root'")
    root = data.get("root") or "."
    if not isinstance(root, str):
        raise ConfigError(f"manifest {path}: 'root' = {root!r}: expected a folder path")
    base = (path.parent / root).resolve()
    checkpoints = data.get("checkpoints") or {}
    if not isinstance(checkpoints, Mapping):
        raise ConfigError(f"manifest {path}: 'checkpoints' must map names to entries, got "
                          f"{type(checkpoints).__name__}")
    return {name: _entry(name, fields, path, base) for name, fields in checkpoints.items()}


def manifest_files(manifests: Iterable[Path | str] | None = None) -> list[Path]:
    """The package's manifest, those of ``$KDMRI_MANIFESTS``, then ``manifests``."""
    extra = [p for p in os.environ.get(MANIFEST_ENV, "").split(os.pathsep) if p.strip()]
    return [MANIFEST, *(Path(p) for p in extra), *(Path(p) for p in manifests or ())]


def entries(manifests: Iterable[Path | str] | None = None) -> dict[str, Entry]:
    """Every named checkpoint of :func:`manifest_files`; a name in two manifests is an error."""
    found: dict[str, Entry] = {}
    for path in manifest_files(manifests):
        for name, item in read_manifest(path).items():
            if name in found and found[name].manifest.resolve() != item.manifest.resolve():
                raise ConfigError(f"pretrained {name!r} is named by two manifests, {found[name].manifest} "
                                  f"and {item.manifest}; rename one")
            found[name] = item
    return found


def entry(name: str, manifests: Iterable[Path | str] | None = None) -> Entry:
    """The manifest entry of ``name`` (:class:`ConfigError` naming the known names otherwise)."""
    known = entries(manifests)
    if name not in known:
        listed = sorted(known) or "none yet"
        raise ConfigError(f"pretrained {name!r}: unknown checkpoint; known: {listed} (manifests: "
                          f"{', '.join(str(p) for p in manifest_files(manifests))}; add one with "
                          f"${MANIFEST_ENV})")
    return known[name]


def path(name: str, manifests: Iterable[Path | str] | None = None, progress: bool = False) -> Path:
    """The verified local file of checkpoint ``name``: a URL fetched into the cache once, a
    path checked where it is."""
    item = entry(name, manifests)
    what = f"pretrained {name!r} ({item.manifest})"
    if not item.is_remote:
        return verify(local_source(item.url, item.base), item.sha256, what, item.size)
    suffix = "".join(Path(urlparse(item.url).path).suffixes[-1:]) or ".pt"
    dest = cache_dir() / "pretrained" / f"{name}-{item.sha256[:16]}{suffix}"
    return fetch(item.url, dest, item.sha256, what, size=item.size, progress=progress)


def is_pretrained(source) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def pretrained_name(source: str) -> str:
    name = source[len(PREFIX):]
    if not name:
        raise ConfigError(f"{source!r}: expected {PREFIX}NAME")
    return name


def resolve_checkpoint(source: Path | str, manifests: Iterable[Path | str] | None = None) -> Path:
    """The one resolver of checkpoint arguments: ``pretrained:NAME`` -> its verified local file
    (:func:`path`); anything else -> the path as given."""
    if is_pretrained(source):
        return path(pretrained_name(str(source)), manifests)
    return Path(source)


def load(name: str, device: str = "cpu", manifests: Iterable[Path | str] | None = None):
    """The network of pretrained checkpoint ``name`` in eval mode (rebuilt from its ``arch``)."""
    from kdmri.checkpoint import load_model

    model, _ = load_model(path(pretrained_name(name) if is_pretrained(name) else name, manifests), device)
    return model.eval()


def card(name: str, manifests: Iterable[Path | str] | None = None) -> str:
    """The model card text of ``name``."""
    return entry(name, manifests).card_text()


__all__ = ["MANIFEST", "MANIFEST_ENV", "PREFIX", "STUDY_FOLDER", "STUDY_SUMMARY", "Entry", "card", "entries",
           "entry", "is_pretrained", "load", "manifest_files", "path", "read_manifest", "resolve_checkpoint"]
