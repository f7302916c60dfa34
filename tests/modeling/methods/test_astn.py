"""ASTN: bounded angles, the rotation, the localisation network's initialisation, the objective."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.faster_rcnn import TwoMLPHead

from iadet.modeling.methods import adversary_parameters, build_method
from iadet.modeling.methods.astn import ASTN, astn_objective, rotate_channel_blocks
from iadet.modeling.methods.base import RoIBatch

from conftest import at_step


def test_angles_stay_within_the_bound_whatever_the_weights():
    astn = ASTN(2 * 3 * 3, hidden=8, blocks=4, max_angle=10.0)
    assert torch.equal(astn(torch.randn(5, 2, 3, 3)), torch.zeros(5, 4))  # untrained: the identity
    with torch.no_grad():
        for p in astn.parameters():
            p.normal_(0, 100.0)
        angles = astn(torch.randn(64, 2, 3, 3) * 100)
    assert angles.shape == (64, 4)
    assert float(angles.abs().max()) <= math.radians(10.0) + 1e-7
    assert float(angles.abs().max()) > math.radians(9.9)  # saturates at the bound, not below it


def test_zero_angle_is_the_identity():
    x = torch.randn(3, 8, 7, 7)
    out = rotate_channel_blocks(x, torch.zeros(3, 4))
    assert torch.allclose(out, x, atol=1e-5)
    uneven = torch.randn(2, 7, 5, 9)  # 7 channels in 3 blocks, a non-square map
    assert torch.allclose(rotate_channel_blocks(uneven, torch.zeros(2, 3)), uneven, atol=1e-5)


def test_each_block_turns_by_its_own_angle_about_the_centre():
    x = torch.zeros(1, 4, 7, 7)
    x[0, :, 0, 3] = 1.0  # the top-centre cell on every channel
    angles = torch.tensor([[math.pi / 2, 0.0]])  # block 0 (channels 0-1) a quarter turn, block 1 none
    out = rotate_channel_blocks(x, angles)
    assert torch.allclose(out[0, 2:], x[0, 2:], atol=1e-5)
    for c in (0, 1):
        peak = divmod(int(out[0, c].argmax()), 7)
        assert peak in ((3, 0), (3, 6)) and out[0, c].max() == pytest.approx(1.0, abs=1e-5)
    assert out[0, :2].sum() == pytest.approx(2.0, abs=1e-4)


def test_rotation_is_differentiable_in_angles_and_features_and_keeps_dtype():
    x = torch.randn(2, 4, 7, 7, requires_grad=True)
    angles = torch.full((2, 2), 0.1, requires_grad=True)
    out = rotate_channel_blocks(x, angles)
    gx, ga = torch.autograd.grad(out.square().sum(), [x, angles])
    assert gx.abs().sum() > 0 and ga.abs().sum() > 0
    half = rotate_channel_blocks(x.detach().bfloat16(), angles.detach())
    assert half.dtype == torch.bfloat16


def test_localisation_network_starts_from_the_box_heads_fc6_fc7():
    head = TwoMLPHead(4 * 7 * 7, 32)
    astn = ASTN(4 * 7 * 7, hidden=32)
    assert astn.init_from_head(head)
    assert torch.equal(astn.fc1.weight, head.fc6.weight) and torch.equal(astn.fc2.bias, head.fc7.bias)
    assert astn.fc1.weight.data_ptr() != head.fc6.weight.data_ptr()  # a copy, not shared
    assert not ASTN(4 * 7 * 7, hidden=16).init_from_head(head)  # shapes differ: left as initialised


def test_objectives():
    logits = torch.tensor([[0.0, 2.0, 1.0], [1.0, 0.0, 3.0]])
    labels = torch.tensor([1, 2])
    assert astn_objective(logits, labels, "max-loss").item() == pytest.approx(
        -F.cross_entropy(logits, labels).item()
    )
    background = F.cross_entropy(logits, torch.zeros(2, dtype=torch.int64)).item()
    assert astn_objective(logits, labels, "background").item() == pytest.approx(background)


class LinearHead(torch.nn.Module):
    def __init__(self, c: int, k: int = 3) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(c * 49, k)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_astn_rotates_foreground_rois_with_detached_angles_and_only_its_loss_trains_it():
    torch.manual_seed(0)
    method = build_method({"name": "astn", "warmup_iters": 0, "image_share": 1.0})
    method.astn = ASTN(2 * 49, hidden=16)
    with torch.no_grad():
        method.astn.fc3.weight.normal_(0, 1.0)  # non-zero angles
    at_step(method, 0, 10)
    head = LinearHead(2)
    labels = torch.tensor([1, 0, 2])
    batch = RoIBatch(
        labels, [torch.zeros(3, 4)], torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64), [(9, 9)], head
    )
    features = torch.randn(3, 2, 7, 7, requires_grad=True)
    out = method(features, batch)
    assert torch.equal(out.features[1], features[1])  # background untouched
    assert not torch.allclose(out.features[0], features[0])
    assert 0 < out.stats["astn_abs_angle"] <= 10.0

    detector_loss = F.cross_entropy(head(out.features), labels)
    to_adversary = torch.autograd.grad(detector_loss, adversary_parameters(method), allow_unused=True)
    assert all(g is None for g in to_adversary)  # the detector's loss never reaches the ASTN
    adversary_loss = out.losses["loss_astn"]
    (to_features,) = torch.autograd.grad(adversary_loss, [features], allow_unused=True)
    assert to_features is None  # nor does the ASTN's loss reach the backbone
    grads = torch.autograd.grad(adversary_loss, adversary_parameters(method))
    assert all(g.abs().sum() > 0 for g in grads[-2:])  # fc3
    assert head.fc.weight.grad is None


def test_large_maps_are_pooled_before_the_localisation_network():
    assert ASTN.input_size(14, 14, 7) == (7, 7) and ASTN.input_size(7, 7, 7) == (7, 7)
    assert ASTN.input_size(14, 14, 0) == (14, 14)
    astn = ASTN(16 * 7 * 7, hidden=8, pool=7)  # a C4 head's 14 x 14 read at 7 x 7
    with torch.no_grad():
        astn.fc3.weight.normal_()
        assert astn(torch.randn(3, 16, 14, 14)).shape == (3, 4)
        x = torch.randn(3, 16, 14, 14)
        assert torch.equal(astn(x), astn(F.avg_pool2d(x, 2)))
