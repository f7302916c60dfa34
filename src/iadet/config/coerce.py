"""Checking config values against the schema's type annotations.

One checker for every section, the method's parameters included: ``--set`` values arrive as
YAML scalars and are coerced (``"0.5"`` -> 0.5, ``"1/3"`` -> 0.333...) or refused with the key
and the expected type. Numbers must be finite (NaN and infinities are refused everywhere), and the
fixed sections' numbers must lie in their :data:`~iadet.config.schema.RANGES`. A refused value is
shown shortened (:func:`short_repr`), so a huge one (a YAML alias bomb) never prints whole.
"""

from __future__ import annotations

import math
import reprlib
import types
import typing
from collections.abc import Mapping
from typing import Any

from iadet.config.schema import RANGES
from iadet.errors import ConfigError, closest

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""Integer config values must fit in 64 bits."""

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 60, 60


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to a few items and ~60 characters per string, without walking all of ``value``."""
    return _REPR.repr(value)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " (or null)"
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(tp, str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (int, float, bool, str, X | None, list[X])."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("null", "none") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {short_repr(value)}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif not isinstance(value, (list, tuple)):
            value = [value]
        return [coerce(v, item, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true/false, got {short_repr(value)}")
    if tp is int:
        number_int: int | None = None
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            number_int = value
        elif isinstance(value, float) and value.is_integer():
            number_int = int(value)
        elif isinstance(value, str):
            try:
                number_int = int(value)
            except ValueError:
                pass
        if number_int is None:
            raise ConfigError(f"{key}: expected an integer, got {short_repr(value)}")
        if not INT_MIN <= number_int <= INT_MAX:  # seeds, sizes and counts end in int64 tensors and C code
            raise ConfigError(f"{key}: expected an integer of at most 64 bits, got {short_repr(value)}")
        return number_int
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {short_repr(value)}")
        number: float | None = None
        if isinstance(value, (int, float)):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond float range
                number = math.inf
        elif isinstance(value, str):
            try:
                number = float(_fraction(value))
            except (ValueError, ZeroDivisionError, OverflowError):
                pass
        if number is None:
            raise ConfigError(f"{key}: expected a number, got {short_repr(value)}")
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {short_repr(value)}")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {short_repr(value)}")
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a schema bug, not user input


def _fraction(text: str) -> float:
    """``"1/3"`` -> 0.333..., else ``float(text)``."""
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


def build_section(schema: type, name: str, values: Mapping[str, Any], origin: str) -> Any:
    hints = typing.get_type_hints(schema)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            hint = closest(f"{name}.{key}", [f"{name}.{k}" for k in hints])
            raise ConfigError(f"{origin}: unknown config key '{name}.{key}'{hint}")
        kwargs[key] = coerce(value, hints[key], f"{name}.{key}")
        check_range(f"{name}.{key}", kwargs[key])
    return schema(**kwargs)


def check_range(key: str, value: Any) -> None:
    """Refuse a number outside ``RANGES[key]`` (each item of a list); ``None`` and other keys pass."""
    allowed = RANGES.get(key)
    if allowed is None or value is None:
        return
    for item in value if isinstance(value, list) else [value]:
        if not allowed.allows(item):
            shown = f" (in {short_repr(value)})" if isinstance(value, list) else ""
            raise ConfigError(f"{key} must be {allowed}, got {short_repr(item)}{shown}")
