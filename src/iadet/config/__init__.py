"""Configs: schema, built-in presets, YAML loading and ``--set`` overrides."""

from iadet.config.config import Config, apply_overrides, config_diff, load_config, save_config
from iadet.config.presets import PRESETS

__all__ = ["Config", "PRESETS", "apply_overrides", "config_diff", "load_config", "save_config"]
