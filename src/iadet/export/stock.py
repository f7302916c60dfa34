"""The stock torchvision constructions our FPN detectors' weights load into with ``strict=True``.

No lock-in: a model trained with any method is a plain ``FasterRCNN``/``MaskRCNN`` (the method
is never part of the state dict), and for the FPN backbones torchvision can build the same
model through its public API alone. Which one depends on the normalisation, which follows
torchvision's rule (FrozenBatchNorm when trained from pretrained weights, BatchNorm
otherwise), and is read from the weights themselves: BatchNorm has ``num_batches_tracked``
buffers, FrozenBatchNorm has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

from iadet.errors import ConfigError

RESNET_FPN = {
    "resnet50_fpn": "resnet50",
    "resnet101_fpn": "resnet101",
    "resnext101_32x8d_fpn": "resnext101_32x8d",
    "resnext101_64x4d_fpn": "resnext101_64x4d",
}
STOCK_BACKBONES = (*RESNET_FPN, "mobilenet_v3_fpn")
STOCK_DETECTORS = ("faster_rcnn", "mask_rcnn")


def uses_frozen_bn(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when the weights come from FrozenBatchNorm (no ``num_batches_tracked`` buffer)."""
    return not any(key.endswith("num_batches_tracked") for key in state_dict)


def _check(backbone: str, detector: str) -> None:
    if backbone not in STOCK_BACKBONES or detector not in STOCK_DETECTORS:
        raise ConfigError(
            f"model.backbone={backbone}, model.detector={detector} has no stock torchvision constructor "
            f"(those with one: {', '.join(STOCK_BACKBONES)} with {' or '.join(STOCK_DETECTORS)})"
        )


def stock_detector(
    backbone: str, detector: str, num_classes: int, *, frozen_bn: bool, **kwargs: Any
) -> nn.Module:
    """The torchvision detector, built with torchvision's public API only, that our weights load into.

    ``kwargs`` go to ``FasterRCNN``/``MaskRCNN`` (``min_size``, ``box_score_thresh``...: pass
    :func:`iadet.modeling.detector.detector_kwargs` of the run's config for identical detections).
    """
    _check(backbone, detector)
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    cls = MaskRCNN if detector == "mask_rcnn" else FasterRCNN
    if backbone == "mobilenet_v3_fpn":
        body = mobilenet_backbone(
            backbone_name="mobilenet_v3_large", weights=None, fpn=True, norm_layer=norm, trainable_layers=6
        )
        anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
        kwargs = {"rpn_score_thresh": 0.05, **kwargs}
        return cls(body, num_classes=num_classes, rpn_anchor_generator=anchors, **kwargs)
    body = resnet_fpn_backbone(
        backbone_name=RESNET_FPN[backbone], weights=None, norm_layer=norm, trainable_layers=5
    )
    return cls(body, num_classes=num_classes, **kwargs)


def stock_code(
    backbone: str,
    detector: str,
    num_classes: int,
    *,
    frozen_bn: bool,
    settings: Mapping[str, Any] | None = None,
) -> str:
    """Python that builds :func:`stock_detector`'s model and loads a state dict into it (``settings``:
    the detector keyword arguments to write out, e.g. the run's ``min_size``). The weights load on the
    CPU (``map_location='cpu'``, ``weights_only=True``) wherever they were saved; ``model.to(device)`` after."""
    _check(backbone, detector)
    extra = "".join(f", {k}={v!r}" for k, v in (settings or {}).items())
    cls = "MaskRCNN" if detector == "mask_rcnn" else "FasterRCNN"
    norm = "FrozenBatchNorm2d" if frozen_bn else "nn.BatchNorm2d"
    lines = [
        "import torch",
        "from torch import nn",
        f"from torchvision.models.detection import {cls}",
        "from torchvision.ops.misc import FrozenBatchNorm2d",
    ]
    if backbone == "mobilenet_v3_fpn":
        lines += [
            "from torchvision.models.detection.anchor_utils import AnchorGenerator",
            "from torchvision.models.detection.backbone_utils import mobilenet_backbone",
            "",
            f"backbone = mobilenet_backbone(backbone_name='mobilenet_v3_large', weights=None, fpn=True, norm_layer={norm})",
            "anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)",
            f"model = {cls}(backbone, num_classes={num_classes}, rpn_anchor_generator=anchors, "
            f"rpn_score_thresh=0.05{extra})",
        ]
    else:
        lines += [
            "from torchvision.models.detection.backbone_utils import resnet_fpn_backbone",
            "",
            f"backbone = resnet_fpn_backbone(backbone_name='{RESNET_FPN[backbone]}', weights=None, norm_layer={norm})",
            f"model = {cls}(backbone, num_classes={num_classes}{extra})",
        ]
        if backbone == "resnet50_fpn" and not frozen_bn:
            short = "maskrcnn_resnet50_fpn" if detector == "mask_rcnn" else "fasterrcnn_resnet50_fpn"
            lines.append(
                f"# the same: torchvision.models.detection.{short}(weights=None, weights_backbone=None, "
                f"num_classes={num_classes})"
            )
    # map_location: weights saved from a GPU run load on a CPU-only machine too
    load = "torch.load('WEIGHTS', map_location='cpu', weights_only=True)"
    lines += [f"model.load_state_dict({load}, strict=True)", "model.eval()"]
    return "\n".join(lines) + "\n"
