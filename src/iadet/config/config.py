"""Loading, merging, overriding and validating configs.

A config comes from a built-in name (``quick``, ``default``, see :mod:`iadet.config.presets`) or
a YAML file, optionally based on another one through a top-level ``_base_`` key (a built-in
name or a path relative to the file). ``--set section.key=value`` overrides are parsed as
YAML scalars and checked against the schema: an unknown key is an error naming it and the
closest valid key; a value of the wrong type is an error naming the key and the expected type.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from iadet.config.schema import SECTIONS, DataConfig, EvalConfig, ModelConfig, TrainConfig
from iadet.errors import ConfigError, closest


@dataclass
class Config:
    """A complete, validated config. ``method`` holds the resolved parameters of ``method.name``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method: dict[str, Any] = field(default_factory=lambda: {"name": "none"})

    def to_dict(self) -> dict[str, Any]:
        out = {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}
        out["method"] = copy.deepcopy(self.method)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], origin: str = "config") -> Config:
        """Validate a nested mapping (unknown keys and wrong types are errors) into a Config."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{origin}: expected a mapping of sections, got {type(raw).__name__}")
        valid = [*SECTIONS, "method"]
        for section in raw:
            if section not in valid:
                raise ConfigError(
                    f"{origin}: unknown config section '{section}'{closest(str(section), valid)}"
                )
        kwargs: dict[str, Any] = {}
        for name, schema in SECTIONS.items():
            values = raw.get(name) or {}
            if not isinstance(values, Mapping):
                raise ConfigError(f"{origin}: section '{name}' must be a mapping")
            kwargs[name] = _build_section(schema, name, values, origin)
        from iadet.modeling.methods import resolve_method_params

        kwargs["method"] = resolve_method_params(raw.get("method") or {}, origin)
        return cls(**kwargs)


# ----------------------------------------------------------------------------------------------
# type checking


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
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
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
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(_fraction(value))
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a schema bug, not user input


def _fraction(text: str) -> float:
    """``"1/3"`` -> 0.333..., else ``float(text)``."""
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


def _build_section(schema: type, name: str, values: Mapping[str, Any], origin: str) -> Any:
    hints = typing.get_type_hints(schema)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            hint = closest(f"{name}.{key}", [f"{name}.{k}" for k in hints])
            raise ConfigError(f"{origin}: unknown config key '{name}.{key}'{hint}")
        kwargs[key] = coerce(value, hints[key], f"{name}.{key}")
    return schema(**kwargs)


def check_params(schema: type, values: Mapping[str, Any], section: str, origin: str) -> dict[str, Any]:
    """Validate ``values`` against a params dataclass (used for ``method.*``); return the full dict."""
    return dataclasses.asdict(_build_section(schema, section, values, origin))


# ----------------------------------------------------------------------------------------------
# loading and overrides


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(name_or_path: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    from iadet.config.presets import PRESETS

    if name_or_path in PRESETS:
        return copy.deepcopy(PRESETS[name_or_path])
    path = Path(name_or_path)
    if not path.exists():
        hint = closest(name_or_path, PRESETS)
        raise ConfigError(
            f"config '{name_or_path}' is neither a built-in name ({', '.join(PRESETS)}) nor an existing file{hint}"
        )
    if str(path.resolve()) in seen:
        raise ConfigError(f"{path}: _base_ chain loops back to itself")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of sections")
    base = raw.pop("_base_", None)
    if base is None:
        return raw
    base_ref = str(base)
    if base_ref not in PRESETS and not Path(base_ref).is_absolute():
        base_ref = str(path.parent / base_ref)
    return _deep_merge(load_raw(base_ref, (*seen, str(path.resolve()))), raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=0.01"`` -> ``(["train", "lr"], 0.01)``; the value is a YAML scalar or list."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form section.key=value")
    key, value = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override '{text}': the key must be section.key (e.g. train.lr=0.01)")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return parts, parsed


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for text in overrides:
        (section, key), value = parse_override(text)
        if section == "method" and key == "name" and out.get("method", {}).get("name") != value:
            # a different method: its parameters start from that method's defaults
            out["method"] = {}
        out.setdefault(section, {})
        if not isinstance(out[section], dict):
            raise ConfigError(f"override '{text}': '{section}' is not a section")
        out[section][key] = value
    return out


def load_config(name_or_path: str | None = None, overrides: Iterable[str] = ()) -> Config:
    """Load a built-in or YAML config, apply ``section.key=value`` overrides, validate."""
    raw = load_raw(name_or_path) if name_or_path else {}
    raw = apply_overrides(raw, overrides)
    return Config.from_dict(raw, origin=str(name_or_path or "config"))


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        dotted = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out.extend(config_diff(va, vb, dotted + "."))
        elif va != vb:
            out.append(dotted)
    return out
