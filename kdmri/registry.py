"""The one registry type behind every named extension of kdmri.

Tasks, stages, initialisers, objective terms, feature losses, network kinds, datasets, mask
generators and ablation recipes are each a :class:`Registry`: a ``name -> object`` mapping
filled when the package that holds it is imported (its modules call ``add`` or decorate with
``register``). It reads as a dict (``name in REG``, ``REG[name]``, ``sorted(REG)``,
``REG.items()``); a name registered twice with different objects is refused, and an unknown
name gives one error listing the known names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from kdmri.errors import ConfigError

T = TypeVar("T")


class UnknownName(ConfigError, KeyError):
    """A name no registry entry has (a :class:`ConfigError`, and a ``KeyError`` for dict users)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _describe(obj: object) -> str:
    name = getattr(obj, "__qualname__", None)
    return f"{getattr(obj, '__module__', '?')}.{name}" if name else repr(obj)


class Registry(dict, Generic[T]):
    """A name -> object mapping that refuses to re-register a name with something else and
    names the known entries when a lookup fails.

    Args:
        kind: what an entry is, for messages (``"feature loss"``, ``"dataset"``).
        hint: appended to the unknown-name error (how to add one).
    """

    def __init__(self, kind: str, hint: str = ""):
        super().__init__()
        self.kind = kind
        self.hint = hint

    def add(self, name: str, obj: T, replace: bool = False) -> T:
        """Register ``obj`` as ``name`` and return it; :class:`ConfigError` (a ``ValueError``)
        when ``name`` already holds a different object, unless ``replace``."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{self.kind} name: expected a non-empty string, got {name!r}")
        if not replace and name in self and self[name] is not obj and self[name] != obj:
            raise ConfigError(f"{self.kind} {name!r} is already registered ({_describe(self[name])})")
        self[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@REG.register("name")``."""

        def decorator(obj: T) -> T:
            return self.add(name, obj)

        return decorator

    def unknown(self, name: object, setting: str | None = None) -> UnknownName:
        """The error for a name not registered, listing the known names; ``setting``: the
        config key that gave the name (``feature_loss='kl': expected one of [...]``)."""
        what = f"{setting}={name!r}" if setting else f"{self.kind} {name!r}"
        return UnknownName(f"{what}: expected one of {sorted(self)}{self.hint}")

    def lookup(self, name: str, setting: str | None = None) -> T:
        """The entry ``name``; :class:`UnknownName` listing the known names."""
        if name not in self:
            raise self.unknown(name, setting)
        return self[name]

    def remove(self, name: str) -> None:
        """Drop ``name`` if registered (tests clean up with it)."""
        self.pop(name, None)

    def __missing__(self, name: object):
        raise self.unknown(name)
