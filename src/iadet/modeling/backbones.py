"""Backbones (``model.backbone``) and the detector parts that go with each.

Each entry of :data:`BACKBONES` builds the pieces torchvision's ``FasterRCNN``/``MaskRCNN``
take: the feature extractor (with ``out_channels``) and, where they differ from torchvision's
defaults, the anchor generator, RoI pooler and box head. The FPN ResNets follow
torchvision's ``fasterrcnn_resnet50_fpn`` step by step (FrozenBatchNorm and frozen early
stages only when pretrained weights are used, plain BatchNorm otherwise), so our state-dict
keys are exactly those of the stock constructors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torchvision.models import mobilenet_v3_large, resnet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import (
    _mobilenet_extractor,
    _resnet_fpn_extractor,
    _validate_trainable_layers,
)
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import misc as misc_nn_ops

from iadet.config.schema import ModelConfig
from iadet.modeling.weights import load_backbone_weights


@dataclass
class BackboneParts:
    """A feature extractor and the detector arguments that belong with it."""

    backbone: nn.Module
    detector_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``FasterRCNN(...)`` arguments: ``rpn_anchor_generator``, ``box_roi_pool``, ``box_head``..."""
    representation_size: int | None = None
    """Width of a custom ``box_head``'s output (the predictor's input); None = torchvision's default head."""


class TinyBackbone(nn.Sequential):
    """A small CNN for CPU tests, the demo and the built-in benchmark.

    Five 3x3 conv layers with GroupNorm (independent of the batch split, so DDP and single
    process agree) and ReLU; stride 8, 128 output channels. Input ``(B, 3, H, W)``, output
    ``(B, 128, H/8, W/8)``.
    """

    out_channels = 128

    def __init__(self) -> None:
        def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                nn.GroupNorm(8, cout),
                nn.ReLU(inplace=True),
            ]

        super().__init__(
            *block(3, 32, 2),
            *block(32, 64, 2),
            *block(64, 64, 1),
            *block(64, 128, 2),
            *block(128, 128, 1),
        )


def _tiny(cfg: ModelConfig, pretrained: bool) -> BackboneParts:
    backbone = TinyBackbone()
    if cfg.backbone_weights:
        load_backbone_weights(backbone, cfg.backbone_weights)
    return BackboneParts(
        backbone,
        {
            "rpn_anchor_generator": AnchorGenerator(((16, 32, 64, 128),), ((0.5, 1.0, 2.0),)),
            "box_roi_pool": MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
            "box_head": TwoMLPHead(TinyBackbone.out_channels * 7 * 7, 256),
        },
        representation_size=256,
    )


def _resnet_fpn(arch: str) -> Callable[[ModelConfig, bool], BackboneParts]:
    def build(cfg: ModelConfig, pretrained: bool) -> BackboneParts:
        layers = _validate_trainable_layers(pretrained, cfg.trainable_backbone_layers, 5, 3)
        norm_layer = misc_nn_ops.FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
        body = resnet.__dict__[arch](weights=None, norm_layer=norm_layer)
        if cfg.backbone_weights:
            load_backbone_weights(body, cfg.backbone_weights)
        return BackboneParts(_resnet_fpn_extractor(body, layers))

    build.__doc__ = f"{arch} + FPN, as torchvision's fasterrcnn_resnet50_fpn builds it."
    return build


def _mobilenet_v3_fpn(cfg: ModelConfig, pretrained: bool) -> BackboneParts:
    layers = _validate_trainable_layers(pretrained, cfg.trainable_backbone_layers, 6, 3)
    norm_layer = misc_nn_ops.FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    body = mobilenet_v3_large(weights=None, norm_layer=norm_layer)
    if cfg.backbone_weights:
        load_backbone_weights(body, cfg.backbone_weights)
    backbone = _mobilenet_extractor(body, True, layers)
    anchor_sizes = ((32, 64, 128, 256, 512),) * 3
    return BackboneParts(
        backbone,
        {
            "rpn_anchor_generator": AnchorGenerator(anchor_sizes, ((0.5, 1.0, 2.0),) * 3),
            "rpn_score_thresh": 0.05,
        },
    )


BACKBONES: dict[str, Callable[[ModelConfig, bool], BackboneParts]] = {
    "tiny": _tiny,
    "mobilenet_v3_fpn": _mobilenet_v3_fpn,
    "resnet50_fpn": _resnet_fpn("resnet50"),
    "resnet101_fpn": _resnet_fpn("resnet101"),
}

STOCK_CONSTRUCTORS: dict[str, str] = {
    "resnet50_fpn": "torchvision.models.detection.fasterrcnn_resnet50_fpn",
    "mobilenet_v3_fpn": "torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn",
    "resnet101_fpn": "FasterRCNN(resnet_fpn_backbone('resnet101', ...))",
}
"""The torchvision construction our weights load into with ``strict=True``."""


def feature_shape(model: nn.Module) -> tuple[int, int, int]:
    """``(C, H, W)`` of the RoI-pooled features the hook sees, from a built detector."""
    heads = model.roi_heads
    size = heads.box_roi_pool.output_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    channels = getattr(model.backbone, "out_channels", None)
    return int(channels), int(h), int(w)
