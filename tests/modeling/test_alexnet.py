"""``model.backbone=alexnet`` (A-Fast-RCNN's Tables 1 and 2): the trunk's stride and channels, ImageNet
weights on the trunk and on fc6/fc7, Fast R-CNN's freezing of conv1, and one training iteration of
each method on its 6x6 RoI features (random weights, nothing downloaded, 96 x 128 images)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import alexnet

from iadet.config import method_params
from iadet.config.schema import ModelConfig
from iadet.modeling.backbones import AlexNetTrunk, RoIPool, feature_shape
from iadet.modeling.detector import build_model
from iadet.modeling.methods import adversary_parameters, build_method
from iadet.modeling.methods.asdn import cell_counts, sliding_windows


def small(detector: str = "fast_rcnn", **kw) -> ModelConfig:
    settings = dict(
        backbone="alexnet",
        detector=detector,
        min_size=96,
        max_size=128,
        rpn_pre_nms_top_n_train=64,
        rpn_post_nms_top_n_train=32,
        rpn_pre_nms_top_n_test=32,
        rpn_post_nms_top_n_test=16,
        box_batch_size_per_image=16,
    )
    return ModelConfig(**{**settings, **kw})


def inputs() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 96, 128, generator=g) for _ in range(2)]
    boxes = torch.tensor([[8.0, 10.0, 60.0, 80.0], [66.0, 12.0, 124.0, 90.0]])
    proposals = torch.cat([boxes + 3.0, boxes - 2.0, torch.tensor([[0.0, 0.0, 64.0, 64.0]])])
    targets = [
        {"boxes": boxes.clone(), "labels": torch.tensor([1, 2]), "proposals": proposals.clone()}
        for _ in images
    ]
    return images, targets


def test_trunk_is_conv1_to_conv5_at_stride_16():
    trunk = AlexNetTrunk(alexnet(weights=None).features).eval()
    assert trunk.out_channels == 256
    assert not any(isinstance(m, nn.MaxPool2d) for m in list(trunk)[-2:])  # no pool5
    with torch.no_grad():
        out = trunk(torch.rand(1, 3, 224, 320))
    # Caffe's unpadded pools leave conv5 one cell short of H/16 (13 for 224), as in Fast R-CNN's CaffeNet
    assert out.shape == (1, 256, 13, 19)


def test_pooler_and_hook_shape_are_6x6():
    model = build_model(small(), 3)
    assert isinstance(model.roi_heads.box_roi_pool, RoIPool)
    assert model.roi_heads.box_roi_pool.spatial_scale == 1 / 16
    assert feature_shape(model) == (256, 6, 6)
    assert model.roi_heads.box_head.fc6.in_features == 256 * 6 * 6


def test_head_is_the_imagenet_classifier_and_conv1_is_frozen(tmp_path: Path):
    """ImageNet weights from a local file (torchvision key names) land on the trunk and on fc6/fc7."""
    torch.manual_seed(1)
    source = alexnet(weights=None)
    state = {k: v for k, v in source.state_dict().items() if k.startswith(("features.", "classifier.4"))}
    path = tmp_path / "alexnet_imagenet.pth"
    torch.save(state, path)  # fc6 (9216 x 4096) left out to keep the file small
    with pytest.warns(UserWarning, match="left at their initial values"):
        model = build_model(small(backbone_weights=str(path)), 3)
    torch.testing.assert_close(model.backbone[10].weight, state["features.10.weight"])  # conv5
    torch.testing.assert_close(model.roi_heads.box_head.fc7.weight, state["classifier.4.weight"])
    frozen = {
        i for i, layer in enumerate(model.backbone) if any(not p.requires_grad for p in layer.parameters())
    }
    assert frozen == {0}  # Fast R-CNN fine-tunes conv2 and up for its small networks
    assert all(p.requires_grad for p in model.roi_heads.box_head.parameters())
    assert isinstance(model.roi_heads.box_head.dropout, nn.Dropout)

    three = build_model(small(backbone_weights=str(path), trainable_backbone_layers=3), 3)
    frozen = {
        i for i, layer in enumerate(three.backbone) if any(not p.requires_grad for p in layer.parameters())
    }
    assert frozen == {0, 3}  # conv1, conv2

    scratch = build_model(small(), 3)
    assert all(p.requires_grad for p in scratch.parameters())


def test_the_methods_parameters_fit_6x6():
    """The ASDN's d/3 windows on d = 6 are the paper's nine 2x2 windows; the sampled counts scale."""
    windows = sliding_windows(6, 6)
    assert windows.shape == (9, 6, 6)
    assert bool((windows.flatten(1).sum(1) == 4).all())
    assert bool((windows.sum(0) == 1).all())  # they tile the map
    assert cell_counts(6, 6, 15 / 49, 20 / 49) == (11, 15)  # the code's fractions of 36 cells
    assert cell_counts(6, 6, 1 / 3, 1 / 2) == (12, 18)  # the paper's


def _method(name: str):
    params = {"name": name}
    if name in ("asdn", "astn", "asdn+astn", "fixed-asdn"):
        params |= {"warmup_iters": 0, "image_share": 1.0}
    if name in ("asdn", "asdn+astn", "fixed-asdn"):
        params |= {"pretrain_iters": 1, "drop_threshold": -1.0}  # iteration 0 pre-trains, 1 is joint
    return build_method(method_params(params))


@pytest.mark.parametrize("name", ["none", "ia", "asdn", "astn", "asdn+astn", "hard-dropout"])
def test_one_training_iteration_on_6x6_features(name: str):
    torch.manual_seed(0)
    method = _method(name)
    model = build_model(small(), 3, method, max_iters=10)
    model.train()
    if name in ("astn", "asdn+astn"):  # the ASTN's first layers are AlexNet's fc6/fc7 (9216 -> 4096)
        torch.testing.assert_close(method.astn.fc1.weight, model.roi_heads.box_head.fc6.weight)
    if name in ("asdn", "asdn+astn"):
        assert method.asdn(torch.rand(2, 256, 6, 6)).shape[-2:] == (6, 6)
    detector_params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(detector_params, lr=1e-3)
    iterations = [0, 1] if name in ("asdn", "asdn+astn") else [1]  # the ASDN: pre-training, then joint
    for iteration in iterations:
        method.set_iteration(iteration)
        adversary = [p.detach().clone() for p in adversary_parameters(method)]
        images, targets = inputs()
        losses = model(images, targets)
        assert set(losses) == {"loss_classifier", "loss_box_reg"}
        assert all(bool(torch.isfinite(v)) for v in losses.values())
        expected = {
            "asdn": {"loss_asdn"},
            "astn": {"loss_astn"},
            "asdn+astn": {"loss_asdn"} if iteration == 0 else {"loss_asdn", "loss_astn"},
        }.get(name, set())
        assert {k for k in method.statistics() if k.startswith("loss_")} == expected
        if expected:  # the adversaries trained themselves on those losses, inside the forward
            after = adversary_parameters(method)
            assert any(not torch.equal(a, b) for a, b in zip(adversary, after))
        optimizer.zero_grad()
        sum(losses.values()).backward()
        if method.trains_detector():
            assert model.backbone[3].weight.grad.abs().sum() > 0  # conv2 learns
        optimizer.step()
