"""The detector zoo: every backbone x detector builds and trains one IA iteration on CPU; a method sees
the RoI features the table promises; trunk strides; ImageNet weights from a file and the papers' freezing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import resnet50, vgg16
from torchvision.ops.misc import FrozenBatchNorm2d

from iadet.config.schema import ModelConfig
from iadet.errors import ConfigError
from iadet.modeling.backbones import BACKBONES, ResNetC4Trunk, VGG16Trunk, feature_shape, resnet_body
from iadet.modeling.detector import build_model
from iadet.modeling.methods.inverted_attention import InvertedAttention

HOOK_SHAPES = {
    "tiny": (128, 7, 7),
    "vgg16": (512, 7, 7),
    "alexnet": (256, 6, 6),
    "resnet50_c4": (1024, 14, 14),
    "resnet101_c4": (1024, 14, 14),
    "mobilenet_v3_fpn": (256, 7, 7),
    "resnet50_fpn": (256, 7, 7),
    "resnet101_fpn": (256, 7, 7),
    "resnext101_32x4d_fpn": (256, 7, 7),
    "resnext101_32x8d_fpn": (256, 7, 7),
    "resnext101_64x4d_fpn": (256, 7, 7),
}
DETECTORS = ("faster_rcnn", "fast_rcnn", "mask_rcnn")


def small(backbone: str, detector: str = "faster_rcnn", **kw) -> ModelConfig:
    """A CPU-sized model: 48 x 64 images, few proposals, 8 RoIs per image."""
    settings = dict(
        backbone=backbone,
        detector=detector,
        min_size=48,
        max_size=64,
        rpn_pre_nms_top_n_train=64,
        rpn_post_nms_top_n_train=32,
        rpn_pre_nms_top_n_test=32,
        rpn_post_nms_top_n_test=16,
        box_batch_size_per_image=8,
    )
    return ModelConfig(**{**settings, **kw})


def batch(detector: str) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 48, 64, generator=g)]  # one small image: the deep backbones cost seconds on CPU
    targets = []
    for image in images:
        h, w = image.shape[1:]
        t = {
            "boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [34.0, 8.0, 60.0, 44.0]]),
            "labels": torch.tensor([1, 2]),
        }
        if detector == "mask_rcnn":
            masks = torch.zeros(2, h, w, dtype=torch.uint8)
            masks[0, 6:40, 4:30] = 1
            masks[1, 8:44, 34:60] = 1
            t["masks"] = masks
        if detector == "fast_rcnn":
            t["proposals"] = torch.tensor(
                [[0.0, 0.0, 32.0, 32.0], [30.0, 8.0, 62.0, 46.0], [2.0, 2.0, 60.0, 46.0]]
            )
        targets.append(t)
    return images, targets


class RecordingIA(InvertedAttention):
    """Inverted Attention that remembers the shape of the RoI features it was given."""

    def forward(self, features, batch):
        self.seen_shape = tuple(features.shape[1:])
        out = super().forward(features, batch)
        self.masked_fraction = out.stats.get("ia_masked_fraction")
        return out


GRID = [pytest.param(b, d, id=f"{b}-{d}") for b in BACKBONES for d in DETECTORS]
"""About a second each on one CPU thread at 48 x 64, the ResNeXt-101s and VGG16 included."""


@pytest.mark.parametrize("backbone,detector", GRID)
def test_one_ia_iteration(backbone: str, detector: str):
    torch.manual_seed(0)
    method = RecordingIA(InvertedAttention.Params(roi_ratio=0.5))
    model = build_model(small(backbone, detector), 3, method)
    assert feature_shape(model) == HOOK_SHAPES[backbone]

    model.train()
    images, targets = batch(detector)
    losses = model(images, targets)
    expected = {"loss_classifier", "loss_box_reg"}
    if detector != "fast_rcnn":
        expected |= {"loss_objectness", "loss_rpn_box_reg"}
    if detector == "mask_rcnn":
        expected |= {"loss_mask"}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    assert method.seen_shape == HOOK_SHAPES[backbone]  # what IA actually received
    assert method.masked_fraction > 0

    trainable = [p for p in model.backbone.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    optimizer.zero_grad()
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable), "the backbone learns"
    optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, trainable))

    if detector == "fast_rcnn":
        assert not any(k.startswith("rpn.") for k in model.state_dict())


@pytest.mark.parametrize(
    "make,stride,channels",
    [
        (lambda: VGG16Trunk(vgg16(weights=None).features), 16, 512),
        (lambda: ResNetC4Trunk(resnet_body("resnet50", nn.BatchNorm2d)), 16, 1024),
    ],
    ids=["vgg16", "resnet50_c4"],
)
def test_single_level_trunks_have_stride_16(make, stride, channels):
    trunk = make().eval()
    with torch.no_grad():
        out = trunk(torch.rand(1, 3, 96, 128))
    assert out.shape == (1, channels, 96 // stride, 128 // stride)
    assert trunk.out_channels == channels


def test_vgg16_head_is_the_imagenet_classifier(tmp_path: Path):
    """ImageNet weights from a local file land on the trunk and on fc6/fc7; conv1-conv2 are frozen."""
    torch.manual_seed(1)
    source = vgg16(weights=None)
    # the trunk and fc7 (fc6 alone is 100M parameters: not needed to check the mapping)
    state = {
        k: v
        for k, v in source.state_dict().items()
        if k.startswith("features.") or k.startswith("classifier.3")
    }
    path = tmp_path / "vgg16_imagenet.pth"
    torch.save(state, path)
    with pytest.warns(UserWarning, match="left at their initial values"):
        model = build_model(small("vgg16", backbone_weights=str(path)), 3)
    torch.testing.assert_close(model.backbone[28].weight, state["features.28.weight"])  # conv5_3
    torch.testing.assert_close(model.roi_heads.box_head.fc7.weight, state["classifier.3.weight"])
    frozen = {
        i for i, layer in enumerate(model.backbone) if any(not p.requires_grad for p in layer.parameters())
    }
    assert frozen == {0, 2, 5, 7}  # conv1_1, conv1_2, conv2_1, conv2_2
    assert all(p.requires_grad for p in model.roi_heads.box_head.parameters())
    assert isinstance(model.roi_heads.box_head.dropout, nn.Dropout)


def test_resnet_c4_freezing_and_frozen_bn_with_imagenet_weights(tmp_path: Path):
    torch.manual_seed(2)
    source = resnet50(weights=None)
    path = tmp_path / "r50.pth"
    torch.save(source.state_dict(), path)
    model = build_model(small("resnet50_c4", backbone_weights=str(path)), 3)
    trunk, head = model.backbone, model.roi_heads.box_head
    torch.testing.assert_close(trunk.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    torch.testing.assert_close(head.layer4[2].conv3.weight, source.layer4[2].conv3.weight)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in head.modules())
    # the papers: stem and res2 frozen, res3-res5 train
    assert not any(p.requires_grad for p in [*trunk.conv1.parameters(), *trunk.layer1.parameters()])
    assert all(p.requires_grad for p in [*trunk.layer2.parameters(), *trunk.layer3.parameters()])
    assert all(p.requires_grad for p in head.parameters())


def test_trainable_backbone_layers_counts_stages_from_the_top(tmp_path: Path):
    torch.save(resnet50(weights=None).state_dict(), tmp_path / "r50.pth")
    model = build_model(
        small("resnet50_c4", backbone_weights=str(tmp_path / "r50.pth"), trainable_backbone_layers=1), 3
    )
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.roi_heads.box_head.parameters())


def test_random_init_uses_batchnorm_and_trains_everything():
    model = build_model(small("resnet50_c4"), 3)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())
    assert all(p.requires_grad for p in model.parameters())
    vgg = build_model(small("vgg16"), 3)
    assert all(p.requires_grad for p in vgg.backbone.parameters())


def test_unknown_backbone_names_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'resnet101_c4'"):
        build_model(small("resnet101-c4"), 3)


@pytest.mark.parametrize("backbone", ["tiny", "resnet50_fpn", "vgg16", "alexnet", "resnet50_c4"])
def test_every_registered_method_sets_up_on_the_hook_shape(backbone: str):
    """The adversaries size themselves from feature_shape: 7x7x512, 6x6x256, 14x14x1024, 7x7x256."""
    from iadet.modeling.attach import attach, list_methods

    model = build_model(small(backbone), 3)
    keys = list(model.state_dict())
    for name in list_methods():
        attach(model, name, max_iters=10, replace=True)
        assert list(model.state_dict()) == keys, name
