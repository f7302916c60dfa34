"""Loading a trained detector for evaluation, prediction, robustness and pictures.

A checkpoint is either a training checkpoint (``checkpoint.pth``: it carries its config) or a
bare torchvision state dict (``model_final.pth``), whose config is the run's ``config.yaml``
beside it, or ``--config`` when given.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from iadet.config import Config, apply_overrides, load_config
from iadet.config.config import load_raw
from iadet.engine.checkpoint import is_training_checkpoint, load_file
from iadet.errors import CheckpointError, ConfigError
from iadet.modeling.detector import build_model


def load_detector(
    checkpoint: str | Path,
    *,
    config: str | None = None,
    overrides: Iterable[str] = (),
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, Config]:
    """The detector in ``checkpoint`` (eval mode, on ``device``) and its config."""
    path = Path(checkpoint)
    state = load_file(path)
    if is_training_checkpoint(state):
        raw = state["config"]
        model_state = state["model"]
    elif isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        model_state = state
        source = config or (path.parent / "config.yaml")
        if config is None and not Path(source).is_file():
            raise ConfigError(f"{path} is a bare state dict and has no config.yaml beside it: pass --config")
        raw = load_raw(str(source))
    else:
        raise CheckpointError(f"{path}: neither an iadet checkpoint nor a state dict of tensors")
    if config is not None and is_training_checkpoint(state):
        raw = load_raw(config)
    raw = apply_overrides(raw, overrides)
    cfg = Config.from_dict(raw, origin=str(path))
    if not cfg.data.classes:
        raise ConfigError(f"{path}: the config names no classes (data.classes); pass --config with them")
    model = build_model(cfg.model, len(cfg.data.classes) + 1)
    try:
        model.load_state_dict(model_state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[1:3]) if len(first) > 1 else first[0]
        raise CheckpointError(
            f"{path} does not fit model.backbone={cfg.model.backbone}, model.detector={cfg.model.detector} with "
            f"{len(cfg.data.classes)} classes ({detail[:300]})"
        ) from None
    model.to(device).eval()
    return model, cfg


def load_config_for(checkpoint: str | Path, config: str | None = None) -> Config:
    """Only the config of a checkpoint (no model)."""
    path = Path(checkpoint)
    if config is not None:
        return load_config(config)
    state = load_file(path)
    if is_training_checkpoint(state):
        return Config.from_dict(state["config"], origin=str(path))
    return load_config(str(path.parent / "config.yaml"))
