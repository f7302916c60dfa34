"""random-dropout and hard-dropout: the ASDN's cell count at random, the hardest window every iteration."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from iadet.modeling.methods import adversary_parameters, build_method
from iadet.modeling.methods.base import RoIBatch

from conftest import at_step


class WindowHead(nn.Module):
    """Class 1's logit is the sum of the features in rows 2-3, columns 4-5 (the window at (2, 4))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = x[:, 0, 2:4, 4:6].sum(dim=(1, 2))
        return torch.stack([torch.zeros_like(fg), fg, -fg], dim=1)


def _batch(labels: torch.Tensor, images: int) -> RoIBatch:
    n = labels.numel()
    return RoIBatch(
        proposals=[torch.zeros(n // images, 4) for _ in range(images)],
        labels=labels,
        regression_targets=torch.zeros(n, 4),
        image_index=torch.arange(images).repeat_interleave(n // images),
        image_shapes=[(64, 64)] * images,
    )


def test_random_dropout_zeroes_the_asdns_cell_count_on_foreground_rois_of_half_the_images():
    method = build_method({"name": "random-dropout"})
    at_step(method, 0, 10)
    labels = torch.tensor([1, 2, 0, 1, 0, 2])
    features = torch.rand(6, 4, 7, 7) + 0.1
    batch = _batch(labels, images=2)
    out = method(features.requires_grad_(True), replace(batch, head=WindowHead()))
    assert torch.equal(out.features[:3], features[:3])  # the first image is clean
    zero_cells = (out.features.detach() == 0).all(dim=1).flatten(1).sum(1)
    assert zero_cells.tolist() == [0, 0, 0, 15, 0, 15]  # all channels of 15 of 49 cells
    assert (
        (out.features.detach() == 0) == (out.features.detach() == 0)[:, :1]
    ).all()  # the same cells on every channel
    (grad,) = torch.autograd.grad(out.features.sum(), features)
    assert torch.equal(grad[3] == 0, out.features[3].detach() == 0)  # gradients through the kept cells only
    torch.manual_seed(1)
    a = method(features.detach(), replace(_batch(labels, 2), head=WindowHead()))
    b = method(features.detach(), replace(_batch(labels, 2), head=WindowHead()))
    assert not torch.equal(a.features, b.features)  # random cells every call


def test_hard_dropout_zeroes_each_rois_hardest_window_every_iteration():
    method = build_method({"name": "hard-dropout", "image_share": 1.0})
    at_step(method, 0, 10)
    labels = torch.tensor([1, 0, 1])
    features = torch.ones(3, 2, 7, 7)
    out = method(features, replace(_batch(labels, images=1), head=WindowHead()))
    expected = torch.ones(3, 2, 7, 7)
    expected[[0, 2], :, 2:4, 4:6] = 0
    assert torch.equal(out.features, expected)
    assert adversary_parameters(method) == [] and method.training_hooks(None) == []


def test_a_warmup_leaves_features_alone():
    method = build_method({"name": "random-dropout", "warmup_iters": 2, "image_share": 1.0})
    labels = torch.tensor([1, 1])
    features = torch.rand(2, 3, 7, 7)
    at_step(method, 1, 10)
    assert torch.equal(method(features, replace(_batch(labels, 1), head=WindowHead())).features, features)
    at_step(method, 2, 10)
    assert not torch.equal(method(features, replace(_batch(labels, 1), head=WindowHead())).features, features)
