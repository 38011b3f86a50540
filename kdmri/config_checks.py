"""Values of :class:`kdmri.config.Config` converted and checked by the field's declared type.

A params YAML and ``--set key=value`` deliver strings, numbers, booleans and ``null`` as YAML
parses them (YAML 1.1: ``1e-3`` is a string, ``no`` is ``False``); :func:`coerce` turns each
into the type the dataclass declares (``int``, ``float``, ``bool``, ``str``, ``list``,
``dict``, each optionally ``| None``) or raises one :class:`ConfigError` naming the key, the
value and what was expected.
"""

from __future__ import annotations

import math
import os
import re
import types
import typing
from typing import Any

from kdmri.errors import ConfigError

EXPECTED = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string",
            list: "a list", dict: "a mapping"}
TRUE, FALSE = {"true", "yes", "on"}, {"false", "no", "off"}
#: Devices a Config may name (torch.device strings kdmri supports).
DEVICE = re.compile(r"cpu|auto|mps|cuda(:\d+)?")


def split_optional(hint: Any) -> tuple[type, bool]:
    """``(base type, whether None is allowed)`` of a type hint such as ``int | None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _bad(name: str, value: Any, kind: type, optional: bool, hint: str = "") -> ConfigError:
    shown = "null" if value is None else repr(value)
    expected = EXPECTED.get(kind, kind.__name__) + (" or null" if optional else "")
    return ConfigError(f"{name}={shown}: expected {expected}{hint}")


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` of field ``name`` as its declared type ``hint``, or :class:`ConfigError`."""
    kind, optional = split_optional(hint)
    if value is None:
        if optional:
            return None
        raise _bad(name, value, kind, optional, " (null is not allowed for this key)")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
            return value.strip().lower() in TRUE
    elif kind is int and not isinstance(value, bool):
        number = _number(value)
        if number is not None and math.isfinite(number) and float(number).is_integer():
            return int(number)
    elif kind is float and not isinstance(value, bool):
        number = _number(value)
        if number is not None and math.isfinite(number):
            return float(number)
    elif kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise _bad(name, value, kind, optional, " (quote it in YAML, e.g. 'no')")
    elif kind is list and isinstance(value, list | tuple):
        return list(value)
    elif kind is dict and isinstance(value, dict):
        return value
    elif kind not in EXPECTED:
        return value  # a type this module does not check
    raise _bad(name, value, kind, optional)


def _number(value: Any) -> int | float | None:
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        for parse in (int, float):
            try:
                return parse(text)
            except ValueError:
                pass
    return None


def keeps_text(hint: Any) -> bool:
    """Whether a field of type ``hint`` holds text, so ``--set key=no`` means the string 'no'."""
    return split_optional(hint)[0] is str


def check_device(device: str) -> None:
    if not DEVICE.fullmatch(device):
        raise ConfigError(f"device={device!r}: expected one of 'cpu', 'cuda', 'cuda:<n>', 'mps' "
                          "or 'auto'")


def env_int(name: str, default: int | None = None, minimum: int = 0) -> int:
    """The integer environment variable ``name`` (``default`` when unset), >= ``minimum``."""
    text = os.environ.get(name)
    if text is None and default is not None:
        return default
    number = _number(text)
    if not isinstance(number, int) or number < minimum:
        raise ConfigError(f"environment variable {name}={text!r}: expected an integer >= {minimum}")
    return number


def env_number(name: str, default: float, unit: str = "seconds", forever: bool = False) -> float:
    """The positive number (of ``unit``) in environment variable ``name`` (``default`` when
    unset); with ``forever``, ``inf`` or ``none`` mean no limit (``math.inf``)."""
    text = os.environ.get(name)
    if text is None:
        return default
    if forever and text.strip().lower() in ("inf", "none"):
        return math.inf
    number = _number(text)
    if number is None or not (math.isfinite(number) and number > 0):
        also = " (or 'inf' for no limit)" if forever else ""
        raise ConfigError(f"environment variable {name}={text!r}: expected a positive number of "
                          f"{unit}{also}")
    return float(number)
