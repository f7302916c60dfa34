"""Backbones (``model.backbone``) and the detector parts that go with each.

Each entry of :data:`BACKBONES` builds the pieces torchvision's ``FasterRCNN``/``MaskRCNN``
take: the feature extractor (with ``out_channels``) and, where they differ from torchvision's
defaults, the anchor generator, RoI pooler and box head. What a method on the RoI features sees
(:func:`feature_shape`):

==========================  ======  ====================  ==========================  =============
backbone                    stride  pooler                box head                    method sees
==========================  ======  ====================  ==========================  =============
``vgg16``                   16      RoIPool 7x7           fc6, fc7 (dropout)          512 x 7 x 7
``alexnet``                 16      RoIPool 6x6           fc6, fc7 (dropout)          256 x 6 x 6
``resnet50_c4``/``101_c4``  16      RoIAlign 14x14        res5 + average pooling      1024 x 14 x 14
``*_fpn``                   4-64    MultiScaleRoIAlign 7  torchvision's TwoMLPHead    256 x 7 x 7
``tiny``                    8       RoIAlign 7x7          two fc layers (256)         128 x 7 x 7
==========================  ======  ====================  ==========================  =============

``vgg16`` is Fast/Faster R-CNN's (py-faster-rcnn): the conv5_3 trunk without the last
max-pool, RoI max pooling, and VGG16's own ``fc6``/``fc7`` as the box head so that ImageNet
classifier weights map onto it. ``alexnet`` is Fast R-CNN's AlexNet (CaffeNet, model "S") the
same way, as A-Fast-RCNN's Tables 1 and 2 use it: torchvision's AlexNet conv1-conv5 without the
last max-pool, RoI max pooling to 6x6 (its pool5 size, so ``fc6`` keeps its 9216 inputs) and
AlexNet's ``fc6``/``fc7``. The C4 ResNets are the papers' Faster R-CNN ResNet-101 (and
Detectron's C4): res2-res4 as the trunk, res5 run per RoI as the head.

Normalisation and freezing follow torchvision's rule for every backbone: with pretrained
weights (``model.backbone_weights`` or ``model.weights``), FrozenBatchNorm and only the top
``model.trainable_backbone_layers`` stages train (default 3); from random initialisation,
BatchNorm and everything trains. So the FPN ResNets have exactly the state-dict keys of the
stock torchvision constructors (:data:`STOCK_CONSTRUCTORS`), and the papers' freezing is the
pretrained default:

* ``vgg16``: stages are the five conv blocks; 3 trainable = conv3_1 upwards, conv1-conv2
  frozen, as py-faster-rcnn.
* ``alexnet``: stages are its five conv layers; the default is 4 trainable = conv2 upwards, conv1
  frozen, as Fast R-CNN fine-tunes its small networks ("conv2 and up for S and M", Sec. 4.5).
* ResNets: stages are res5, res4, res3, res2, stem (torchvision's order); 3 trainable = stem
  and res2 frozen, as Detectron and the papers' ResNet-101. For C4, res5 lives in the box
  head and counts as the top stage.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torchvision.models import alexnet, mobilenet_v3_large, resnet, vgg16
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import (
    _mobilenet_extractor,
    _resnet_fpn_extractor,
    _validate_trainable_layers,
)
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign, roi_pool
from torchvision.ops import misc as misc_nn_ops

from iadet.config.schema import ModelConfig
from iadet.modeling.weights import load_backbone_weights
from iadet.pretraining import freeze_tiny


@dataclass
class BackboneParts:
    """A feature extractor and the detector arguments that belong with it."""

    backbone: nn.Module
    detector_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``FasterRCNN(...)`` arguments: ``rpn_anchor_generator``, ``box_head``..."""
    representation_size: int | None = None
    """Width of a custom ``box_head``'s output (the predictor's input); None = torchvision's default head."""
    box_roi_pool: nn.Module | None = None
    """The RoI pooler, when not torchvision's default (set after construction: ``FasterRCNN`` only takes
    a ``MultiScaleRoIAlign``)."""
    mask_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``MaskRCNN(...)`` arguments (the mask pooler of a single-level backbone)."""


# ----------------------------------------------------------------------------------------------
# poolers and shared pieces

PAPER_ANCHORS = ((128, 256, 512),)
"""py-faster-rcnn's anchors on a stride-16 map: scales 8, 16, 32 times 16 pixels."""
ASPECT_RATIOS = ((0.5, 1.0, 2.0),)


class RoIPool(nn.Module):
    """RoI max pooling of one feature map (Fast R-CNN, Sec. 2.1), called like ``MultiScaleRoIAlign``.

    ``forward(features, boxes, image_shapes)``: ``features[featmap_name]`` ``(B, C, H, W)`` at
    ``spatial_scale`` of the image, ``boxes`` a list of ``(R_i, 4)`` ``x1, y1, x2, y2`` in image
    pixels; returns ``(sum R_i, C, output_size, output_size)``.
    """

    def __init__(self, output_size: int = 7, spatial_scale: float = 1 / 16, featmap_name: str = "0") -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.featmap_name = featmap_name

    def forward(
        self, features: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        return roi_pool(features[self.featmap_name], boxes, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


def _single_level_mask_pool() -> dict[str, Any]:
    """Mask R-CNN's 14x14 RoIAlign on the one feature map of a non-FPN backbone."""
    return {"mask_roi_pool": MultiScaleRoIAlign(["0"], output_size=14, sampling_ratio=2)}


def _norm_layer(pretrained: bool) -> type[nn.Module]:
    return misc_nn_ops.FrozenBatchNorm2d if pretrained else nn.BatchNorm2d


# ----------------------------------------------------------------------------------------------
# tiny: CPU tests and the demo


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
    stages = _validate_trainable_layers(pretrained, cfg.trainable_backbone_layers, 5, 3)
    backbone = TinyBackbone()
    if cfg.backbone_weights:
        load_backbone_weights(backbone, cfg.backbone_weights)
    freeze_tiny(
        backbone, stages
    )  # with pretrained weights the first two blocks stay as pretrained (as VGG16)
    return BackboneParts(
        backbone,
        {
            "rpn_anchor_generator": AnchorGenerator(((16, 32, 64, 128),), ASPECT_RATIOS),
            "box_roi_pool": MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=1),
            "box_head": TwoMLPHead(TinyBackbone.out_channels * 7 * 7, 256),
        },
        representation_size=256,
        mask_kwargs=_single_level_mask_pool(),
    )


# ----------------------------------------------------------------------------------------------
# VGG16 (Fast/Faster R-CNN)

VGG16_CONV5_3 = 30
"""``vgg16().features[:30]`` ends with conv5_3 + ReLU: the trunk without the last max-pool (stride 16)."""
VGG16_STAGE_STARTS = (0, 5, 10, 17, 24)
"""Index in ``vgg16().features`` of conv1_1, conv2_1, conv3_1, conv4_1, conv5_1."""


class VGG16Trunk(nn.Sequential):
    """VGG16 conv1_1 ... conv5_3: ``(B, 3, H, W) -> (B, 512, H/16, W/16)``.

    The layers keep their indices in ``vgg16().features``, so ImageNet keys map one to one.
    """

    out_channels = 512

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__(*list(features.children())[:VGG16_CONV5_3])


class VGG16BoxHead(nn.Module):
    """VGG16's fc6 and fc7 with ReLU and dropout: ``(N, 512, 7, 7) -> (N, 4096)``.

    ``fc6``/``fc7`` are ``vgg16().classifier[0]`` / ``[3]``, the ImageNet classifier's first two
    layers, as Fast R-CNN initialises its head (Sec. 2.2).
    """

    out_channels = 4096
    FC_INDICES = (0, 3)
    """Where ``fc6`` and ``fc7`` sit in the torchvision model's ``classifier``."""

    def __init__(self, classifier: nn.Sequential, dropout: float = 0.5) -> None:
        super().__init__()
        self.fc6 = classifier[self.FC_INDICES[0]]
        self.fc7 = classifier[self.FC_INDICES[1]]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dropout(self.fc6(x.flatten(1)).relu())
        return self.dropout(self.fc7(x).relu())


def _freeze_stages(trunk: nn.Sequential, starts: tuple[int, ...], trainable_stages: int) -> None:
    """Freeze the layers of ``trunk`` before the top ``trainable_stages`` stages (``starts``: each
    stage's first index in ``trunk``, bottom first)."""
    first_trained = starts[len(starts) - trainable_stages] if trainable_stages > 0 else len(trunk)
    for index, layer in enumerate(trunk):
        if index < first_trained:
            layer.requires_grad_(False)


def _freeze_vgg(trunk: nn.Sequential, trainable_stages: int) -> None:
    """Freeze all but the top ``trainable_stages`` of VGG16's five conv blocks."""
    _freeze_stages(trunk, VGG16_STAGE_STARTS, trainable_stages)


def _vgg16(cfg: ModelConfig, pretrained: bool) -> BackboneParts:
    stages = _validate_trainable_layers(pretrained, cfg.trainable_backbone_layers, 5, 3)
    net = vgg16(weights=None)
    if cfg.backbone_weights:
        load_backbone_weights(net, cfg.backbone_weights)
    trunk = VGG16Trunk(net.features)
    _freeze_vgg(trunk, stages)
    return BackboneParts(
        trunk,
        {
            "rpn_anchor_generator": AnchorGenerator(PAPER_ANCHORS, ASPECT_RATIOS),
            "box_head": VGG16BoxHead(net.classifier),
        },
        representation_size=VGG16BoxHead.out_channels,
        box_roi_pool=RoIPool(output_size=7, spatial_scale=1 / 16),
        mask_kwargs=_single_level_mask_pool(),
    )


# ----------------------------------------------------------------------------------------------
# AlexNet (Fast R-CNN's CaffeNet, A-Fast-RCNN's Tables 1 and 2)

ALEXNET_CONV5 = 12
"""``alexnet().features[:12]`` ends with conv5 + ReLU: the trunk without the last max-pool (stride 16)."""
ALEXNET_STAGE_STARTS = (0, 3, 6, 8, 10)
"""Index in ``alexnet().features`` of conv1 ... conv5."""
ALEXNET_POOL = 6
"""RoI max pooling to AlexNet's pool5 size: ``256 x 6 x 6 = 9216``, the inputs of its ``fc6``."""


class AlexNetTrunk(nn.Sequential):
    """AlexNet conv1 ... conv5: ``(B, 3, H, W) -> (B, 256, ~H/16, ~W/16)``.

    The layers keep their indices in ``alexnet().features``, so ImageNet keys map one to one. Like
    Caffe's, the unpadded max-pools make the map one cell short of ``H/16`` (13 for 224); the RoI
    pooler's 1/16 scale is Fast R-CNN's for this network.
    """

    out_channels = 256

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__(*list(features.children())[:ALEXNET_CONV5])


class AlexNetBoxHead(VGG16BoxHead):
    """AlexNet's fc6 and fc7 with ReLU and dropout: ``(N, 256, 6, 6) -> (N, 4096)``.

    ``fc6``/``fc7`` are ``alexnet().classifier[1]`` / ``[4]`` (torchvision puts a dropout before
    each); dropout follows each ReLU here, as in Caffe's CaffeNet and Fast R-CNN.
    """

    FC_INDICES = (1, 4)


def _alexnet(cfg: ModelConfig, pretrained: bool) -> BackboneParts:
    stages = _validate_trainable_layers(pretrained, cfg.trainable_backbone_layers, 5, 4)
    net = alexnet(weights=None)
    if cfg.backbone_weights:
        load_backbone_weights(net, cfg.backbone_weights)
    trunk = AlexNetTrunk(net.features)
    _freeze_stages(trunk, ALEXNET_STAGE_STARTS, stages)
    return BackboneParts(
        trunk,
        {
            "rpn_anchor_generator": AnchorGenerator(PAPER_ANCHORS, ASPECT_RATIOS),
            "box_head": AlexNetBoxHead(net.classifier),
        },
        representation_size=AlexNetBoxHead.out_channels,
        box_roi_pool=RoIPool(output_size=ALEXNET_POOL, spatial_scale=1 / 16),
        mask_kwargs=_single_level_mask_pool(),
    )


# ----------------------------------------------------------------------------------------------
# ResNets


def resnet_body(arch: str, norm_layer: type[nn.Module]) -> resnet.ResNet:
    """torchvision's ``resnet50`` ... ``resnext101_64x4d``, plus ``resnext101_32x4d`` (Detectron's
    ResNeXt-101 32x4d, which torchvision has no constructor or weights for)."""
    if arch == "resnext101_32x4d":
        return resnet.ResNet(
            resnet.Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4, norm_layer=norm_layer
        )
    return resnet.__dict__[arch](weights=None, norm_layer=norm_layer)


def freeze_resnet(body: resnet.ResNet, trainable_stages: int) -> None:
    """Freeze all but the top ``trainable_stages`` of res5, res4, res3, res2, stem (torchvision's rule)."""
    trained = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_stages]
    if trainable_stages == 5:
        trained.append("bn1")
    for name, parameter in body.named_parameters():
        if not any(name.startswith(prefix) for prefix in trained):
            parameter.requires_grad_(False)


class ResNetC4Trunk(nn.Sequential):
    """Stem, res2, res3, res4: ``(B, 3, H, W) -> (B, 1024, H/16, W/16)`` (ResNet-50/101 C4)."""

    out_channels = 1024

    def __init__(self, body: resnet.ResNet) -> None:
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3")
        super().__init__(OrderedDict((name, getattr(body, name)) for name in names))


class ResNetC4BoxHead(nn.Module):
    """res5 run per RoI, then average pooling: ``(N, 1024, 14, 14) -> (N, 2048)``.

    res5's first block has stride 2, so the 14x14 RoIAlign output is 7x7 when averaged, as in
    the ResNet paper's Faster R-CNN and Detectron's C4 head.
    """

    out_channels = 2048

    def __init__(self, body: resnet.ResNet) -> None:
        super().__init__()
        self.layer4 = body.layer4

    def forward(self, x: Tensor) -> Tensor:
        return self.layer4(x).mean(dim=(2, 3))


def _resnet_c4(arch: str) -> Callable[[ModelConfig, bool], BackboneParts]:
    def build(cfg: ModelConfig, pretrained: bool) -> BackboneParts:
        stages = _validate_trainable_layers(pretrained, cfg.trainable_backbone_layers, 5, 3)
        body = resnet_body(arch, _norm_layer(pretrained))
        if cfg.backbone_weights:
            load_backbone_weights(body, cfg.backbone_weights)
        freeze_resnet(body, stages)
        return BackboneParts(
            ResNetC4Trunk(body),
            {
                "rpn_anchor_generator": AnchorGenerator(PAPER_ANCHORS, ASPECT_RATIOS),
                "box_roi_pool": MultiScaleRoIAlign(["0"], output_size=14, sampling_ratio=2),
                "box_head": ResNetC4BoxHead(body),
            },
            representation_size=ResNetC4BoxHead.out_channels,
            mask_kwargs=_single_level_mask_pool(),
        )

    build.__doc__ = f"{arch} C4: res2-res4 trunk, RoIAlign 14x14, res5 box head."
    return build


def _resnet_fpn(arch: str) -> Callable[[ModelConfig, bool], BackboneParts]:
    def build(cfg: ModelConfig, pretrained: bool) -> BackboneParts:
        stages = _validate_trainable_layers(pretrained, cfg.trainable_backbone_layers, 5, 3)
        body = resnet_body(arch, _norm_layer(pretrained))
        if cfg.backbone_weights:
            load_backbone_weights(body, cfg.backbone_weights)
        return BackboneParts(_resnet_fpn_extractor(body, stages))

    build.__doc__ = f"{arch} + FPN, as torchvision's fasterrcnn_resnet50_fpn builds it."
    return build


def _mobilenet_v3_fpn(cfg: ModelConfig, pretrained: bool) -> BackboneParts:
    layers = _validate_trainable_layers(pretrained, cfg.trainable_backbone_layers, 6, 3)
    body = mobilenet_v3_large(weights=None, norm_layer=_norm_layer(pretrained))
    if cfg.backbone_weights:
        load_backbone_weights(body, cfg.backbone_weights)
    backbone = _mobilenet_extractor(body, True, layers)
    anchor_sizes = ((32, 64, 128, 256, 512),) * 3
    return BackboneParts(
        backbone,
        {
            "rpn_anchor_generator": AnchorGenerator(anchor_sizes, ASPECT_RATIOS * 3),
            "rpn_score_thresh": 0.05,
        },
    )


BACKBONES: dict[str, Callable[[ModelConfig, bool], BackboneParts]] = {
    "tiny": _tiny,
    "vgg16": _vgg16,
    "alexnet": _alexnet,
    "resnet50_c4": _resnet_c4("resnet50"),
    "resnet101_c4": _resnet_c4("resnet101"),
    "mobilenet_v3_fpn": _mobilenet_v3_fpn,
    "resnet50_fpn": _resnet_fpn("resnet50"),
    "resnet101_fpn": _resnet_fpn("resnet101"),
    "resnext101_32x4d_fpn": _resnet_fpn("resnext101_32x4d"),
    "resnext101_32x8d_fpn": _resnet_fpn("resnext101_32x8d"),
    "resnext101_64x4d_fpn": _resnet_fpn("resnext101_64x4d"),
}

IMAGENET_WEIGHTS: dict[str, str | None] = {
    "tiny": None,
    "vgg16": "VGG16_Weights.IMAGENET1K_V1",
    "alexnet": "AlexNet_Weights.IMAGENET1K_V1",
    "resnet50_c4": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet101_c4": "ResNet101_Weights.IMAGENET1K_V1",
    "mobilenet_v3_fpn": "MobileNet_V3_Large_Weights.IMAGENET1K_V1",
    "resnet50_fpn": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet101_fpn": "ResNet101_Weights.IMAGENET1K_V1",
    "resnext101_32x4d_fpn": None,
    "resnext101_32x8d_fpn": "ResNeXt101_32X8D_Weights.IMAGENET1K_V1",
    "resnext101_64x4d_fpn": "ResNeXt101_64X4D_Weights.IMAGENET1K_V1",
}
"""The torchvision ImageNet weights for ``model.backbone_weights`` (``resnext101_32x4d`` has none in
torchvision: give a local file with torchvision ResNet key names). ``IMAGENET1K_V1`` are the
Caffe-era-like weights closest to the papers'."""

STOCK_CONSTRUCTORS: dict[str, str] = {
    "resnet50_fpn": "torchvision.models.detection.fasterrcnn_resnet50_fpn",
    "mobilenet_v3_fpn": "torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn",
    "resnet101_fpn": "FasterRCNN(resnet_fpn_backbone(backbone_name='resnet101', ...))",
    "resnext101_32x8d_fpn": "FasterRCNN(resnet_fpn_backbone(backbone_name='resnext101_32x8d', ...))",
    "resnext101_64x4d_fpn": "FasterRCNN(resnet_fpn_backbone(backbone_name='resnext101_64x4d', ...))",
}
"""The torchvision construction our Faster R-CNN weights load into with ``strict=True``; see
:mod:`iadet.export.stock` for the exact calls (Mask R-CNN: ``maskrcnn_resnet50_fpn`` / ``MaskRCNN``)."""


def feature_shape(model: nn.Module) -> tuple[int, int, int]:
    """``(C, H, W)`` of the RoI-pooled features a method sees, from a built detector."""
    heads = model.roi_heads
    size = heads.box_roi_pool.output_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    channels = getattr(model.backbone, "out_channels", None)
    return int(channels), int(h), int(w)
