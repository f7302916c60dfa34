"""Configs: schema, method parameters, built-in presets, YAML loading and ``--set`` overrides."""

from iadet.config.config import Config, apply_overrides, config_diff, load_config, save_config
from iadet.config.methods import MethodParams, method_names, method_params
from iadet.config.presets import CONFIG_PRESETS

__all__ = [
    "Config",
    "MethodParams",
    "CONFIG_PRESETS",
    "apply_overrides",
    "config_diff",
    "load_config",
    "method_names",
    "method_params",
    "save_config",
]
