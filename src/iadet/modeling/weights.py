"""Weights from torchvision names (``ResNet50_Weights.IMAGENET1K_V1``) or local ``.pth`` files.

Names go through ``torchvision.models.get_weight`` and torchvision's download cache
(``$TORCH_HOME``); nothing is downloaded when the file is already cached. Local files are
read with ``torch.load(weights_only=True)`` and may hold a bare state dict or a dict with a
``"model"`` / ``"state_dict"`` entry (torchvision references, iadet checkpoints).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
import torchvision
from torch import nn

from iadet.errors import CheckpointError, ConfigError
from iadet.serialization import load_file


def is_weights_name(spec: str) -> bool:
    """``ResNet50_Weights.IMAGENET1K_V1``-style names (an existing file of that name wins)."""
    return re.fullmatch(r"\w+_Weights\.\w+", spec) is not None and not Path(spec).exists()


def read_state_dict(spec: str) -> dict[str, torch.Tensor]:
    """The state dict named by ``spec``: a torchvision weights name or a local file."""
    if is_weights_name(spec):
        try:
            weights = torchvision.models.get_weight(spec)
        except (ValueError, KeyError, AttributeError):
            raise ConfigError(
                f"unknown torchvision weights '{spec}' (expected e.g. ResNet50_Weights.IMAGENET1K_V1)"
            ) from None
        try:
            return weights.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # network errors come in many types
            raise ConfigError(
                f"cannot get weights '{spec}' ({type(exc).__name__}); without internet, download "
                f"{weights.url} elsewhere and pass the local path"
            ) from None
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"weights file not found: {path}")
    state = load_file(path)
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return state


BUILTIN = "builtin"
"""``model.backbone_weights=builtin``: the built-in pretrained weights, made on first use and cached
(:func:`iadet.pretraining.builtin_weights`; an existing file of that name wins)."""


def load_backbone_weights(module: nn.Module, spec: str) -> None:
    """Load ImageNet classification weights into a backbone trunk; classifier keys are skipped."""
    if spec == BUILTIN and not Path(spec).exists():
        from iadet.pretraining import builtin_weights

        spec = str(builtin_weights(module))
    state = read_state_dict(spec)
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise CheckpointError(f"backbone weights {spec}: no tensor matches the {type(module).__name__} trunk")
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    if missing:
        warnings.warn(
            f"backbone weights {spec}: {len(missing)} tensors left at their initial values", stacklevel=2
        )
    module.load_state_dict(usable, strict=False)


def load_detector_weights(model: nn.Module, spec: str) -> list[str]:
    """Load whole-detector weights; predictor tensors of another class count are re-initialised.

    Returns the keys that were skipped (the class-specific layers when fine-tuning).
    """
    state = read_state_dict(spec)
    own = model.state_dict()
    unexpected = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    if unexpected or missing:
        sample = (unexpected or missing)[:3]
        raise CheckpointError(
            f"weights {spec} do not fit model.backbone/model.detector: "
            f"{len(missing)} missing and {len(unexpected)} unexpected keys (e.g. {', '.join(sample)})"
        )
    skipped = [k for k, v in state.items() if own[k].shape != v.shape]
    for key in skipped:
        state[key] = own[key]
    model.load_state_dict(state)
    if spec.endswith("ResNet50_FPN_Weights.COCO_V1"):
        # torchvision's COCO_V1 ResNet-50-FPN weights were trained with FrozenBatchNorm eps = 0
        from torchvision.models.detection._utils import overwrite_eps

        overwrite_eps(model, 0.0)
    return skipped
