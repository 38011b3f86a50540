"""The one registry type behind tasks, stages and other named extensions."""

from __future__ import annotations

from typing import Generic, TypeVar

from kdmri.errors import ConfigError

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """A name -> object mapping that refuses to re-register a name with something else and
    names the known entries when a lookup fails."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def add(self, name: str, obj: T) -> T:
        if name in self and self[name] is not obj and self[name] != obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = obj
        return obj

    def lookup(self, name: str) -> T:
        if name not in self:
            raise ConfigError(f"{self.kind} {name!r}: expected one of {sorted(self)}")
        return self[name]
