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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from iadet.config.coerce import build_section
from iadet.config.methods import MethodParams, method_params
from iadet.config.schema import SECTIONS, DataConfig, EvalConfig, ModelConfig, TrainConfig
from iadet.errors import ConfigError, closest


@dataclass
class Config:
    """A complete, validated config. ``method`` holds the checked parameters of ``method.name``
    (a :class:`~iadet.config.methods.MethodParams` subclass, built once by :func:`method_params`)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method: MethodParams = field(default_factory=MethodParams)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts (what ``config.yaml`` and checkpoints store); ``method`` starts with its name."""
        out = {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}
        out["method"] = dataclasses.asdict(self.method)
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
            kwargs[name] = build_section(schema, name, values, origin)
        kwargs["method"] = method_params(raw.get("method") or {}, origin)
        return cls(**kwargs)


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
