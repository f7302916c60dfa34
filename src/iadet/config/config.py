"""Loading, merging, overriding and validating configs.

A config comes from a built-in name (``quick``, ``default``, see :mod:`iadet.config.presets`) or
a YAML file, optionally based on another one through a top-level ``_base_`` key (a built-in
name or a path relative to the file). ``--set section.key=value`` overrides are parsed as
YAML scalars and checked against the schema: an unknown key is an error naming it and the
closest valid key; a value of the wrong type is an error naming the key and the expected type.

YAML is read with a bounded safe loader (:func:`load_yaml`): a file over ``MAX_CONFIG_BYTES``, more
than ``MAX_YAML_NODES`` nodes once aliases are expanded (the "billion laughs" alias bomb), a
recursive alias or nesting deeper than ``MAX_YAML_DEPTH`` is refused before any Python object is built.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from iadet.config.coerce import build_section, short_repr
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
# bounded YAML

MAX_CONFIG_BYTES = 1 << 20
"""A config file larger than this (1 MiB) is refused unread."""
MAX_YAML_NODES = 100_000
"""Nodes a YAML document may hold with every alias expanded (configs hold a few hundred)."""
MAX_YAML_DEPTH = 100
"""Nesting depth of collections in a YAML document."""


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int], depth: int = 0) -> int:
    """Nodes under ``node`` with aliases expanded, memoised per node (so a bomb costs its own size)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise ValueError("an alias refers to a node that contains it (a recursive structure)")
    if depth > MAX_YAML_DEPTH:
        raise ValueError(f"collections nested deeper than {MAX_YAML_DEPTH} levels")
    total = 1
    if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
        open_nodes.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
        for child in children:
            total += _expanded_size(child, sizes, open_nodes, depth + 1)
            if total > MAX_YAML_NODES:
                raise ValueError(
                    f"more than {MAX_YAML_NODES} nodes once aliases are expanded (an alias bomb?)"
                )
        open_nodes.discard(key)
    sizes[key] = total
    return total


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)`` that refuses alias bombs, recursive aliases and deep nesting (``ValueError``).

    The document is composed into nodes first (aliases stay shared, so composing costs the text's
    size), measured with every alias expanded, and only then constructed.
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ValueError(f"collections nested deeper than {MAX_YAML_DEPTH} levels") from None
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


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
    from iadet.config.presets import CONFIG_PRESETS

    if name_or_path in CONFIG_PRESETS:
        return copy.deepcopy(CONFIG_PRESETS[name_or_path])
    path = Path(name_or_path)
    if not path.exists():
        hint = closest(name_or_path, CONFIG_PRESETS)
        raise ConfigError(
            f"config '{name_or_path}' is neither a built-in name ({', '.join(CONFIG_PRESETS)}) nor an existing file{hint}"
        )
    if str(path.resolve()) in seen:
        raise ConfigError(f"{path}: _base_ chain loops back to itself")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: config file larger than {MAX_CONFIG_BYTES >> 20} MiB (refused)")
        raw = load_yaml(path.read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}") from None
    except ValueError as exc:  # load_yaml's limits (UnicodeDecodeError is a ValueError too)
        if isinstance(exc, UnicodeDecodeError):
            raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start})") from None
        raise ConfigError(f"{path}: refused: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of sections")
    base = raw.pop("_base_", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: _base_ must be a built-in config name or a path, got {short_repr(base)}")
    base_ref = base
    if base_ref not in CONFIG_PRESETS and not Path(base_ref).is_absolute():
        base_ref = str(path.parent / base_ref)
    if base_ref not in CONFIG_PRESETS and not Path(base_ref).is_file():
        raise ConfigError(
            f"{path}: _base_ {short_repr(base)} is neither a built-in name ({', '.join(CONFIG_PRESETS)}) nor an existing file"
        )
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
        parsed = load_yaml(value) if value.strip() else None
    except ValueError as exc:
        raise ConfigError(f"override '{key.strip()}': refused: {exc}") from None
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
    from iadet.config.presets import CONFIG_PRESETS

    overrides = list(overrides)
    raw = load_raw(name_or_path) if name_or_path else {}
    raw = apply_overrides(raw, overrides)
    origin = str(name_or_path or "config")
    try:
        return Config.from_dict(raw, origin=origin)
    except ConfigError as exc:
        # a bad value names its key; one from the file (not from a --set naming that key) names the file too
        message = str(exc)
        keys = [text.split("=", 1)[0].strip() for text in overrides]
        from_file = name_or_path and name_or_path not in CONFIG_PRESETS and origin not in message
        if from_file and not any(key and key in message for key in keys):
            raise ConfigError(f"{origin}: {message}") from None
        raise


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
