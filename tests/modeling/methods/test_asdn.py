"""ASDN: windows, the hardest-window target, importance sampling, the 0.1 rule, stages and images."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from iadet.config import method_params
from iadet.modeling.methods import adversary_parameters, build_method
from iadet.modeling.methods.adversarial import adversarial_images, stage_bounds
from iadet.modeling.methods.asdn import (
    ASDN,
    cell_counts,
    hardest_windows,
    importance_sample,
    joint_loss,
    meets_drop_rule,
    sliding_windows,
)
from iadet.modeling.methods.base import RoIBatch

from conftest import at_step


class CellHead(nn.Module):
    """A hand-made head on ``(N, 1, H, W)``: class ``k``'s logit is ``sum_ij w_k[i, j] F[i, j]``,
    background's is ``background``. A dropout in front makes any probe outside eval mode visibly random."""

    def __init__(self, weights: torch.Tensor, background: float = 0.0) -> None:
        super().__init__()
        self.weights = nn.Parameter(weights.clone())  # (K, H, W)
        self.background = background
        self.drop = nn.Dropout(0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = torch.einsum("nchw,khw->nk", self.drop(x), self.weights)
        return torch.cat([torch.full_like(fg[:, :1], self.background), fg], dim=1)


def _batch(labels: torch.Tensor, images: int = 1) -> RoIBatch:
    n = labels.numel()
    return RoIBatch(
        proposals=[torch.zeros(n // images, 4) for _ in range(images)],
        labels=labels,
        regression_targets=torch.zeros(n, 4),
        image_index=torch.arange(images).repeat_interleave(n // images),
        image_shapes=[(64, 64)] * images,
    )


def test_sliding_windows_are_the_released_codes_on_7x7_and_generalise():
    windows = sliding_windows(7, 7)
    assert windows.shape == (16, 7, 7)
    assert all(int(w.sum()) == 4 for w in windows)
    corners = sorted({(int(torch.nonzero(w)[0, 0]), int(torch.nonzero(w)[0, 1])) for w in windows})
    assert corners == sorted((r, c) for r in (0, 2, 4, 5) for c in (0, 2, 4, 5))
    assert bool(windows.any(0).all())  # every cell can be occluded
    six = sliding_windows(6, 6)  # AlexNet's d = 6: the paper's d/3 x d/3 = 9 windows of 2 x 2
    assert six.shape == (9, 6, 6) and bool(six.sum(0).eq(1).all())
    c4 = sliding_windows(14, 14)  # a C4 head: windows of 5, starts 0, 5, 9
    assert c4.shape == (9, 14, 14) and all(int(w.sum()) == 25 for w in c4) and bool(c4.any(0).all())
    odd = sliding_windows(7, 10, size=3, stride=2)
    assert all(int(w.sum()) == 9 for w in odd) and bool(odd.any(0).all())


def test_hardest_window_on_a_hand_made_head():
    h = w = 7
    weights = torch.full((2, h, w), 0.1)
    weights[0, 4:6, 2:4] = 2.0  # class 1 lives in the window at (4, 2)
    weights[1, 0:2, 5:7] = 3.0  # class 2 in the window at (0, 5)
    head = CellHead(weights).train()
    features = torch.ones(3, 1, h, w)
    labels = torch.tensor([1, 2, 1])
    targets, p_min = hardest_windows(features, labels, head, sliding_windows(h, w))

    expected = torch.zeros(3, h, w)
    expected[0, 4:6, 2:4] = expected[2, 4:6, 2:4] = 1
    expected[1, 0:2, 5:7] = 1
    assert torch.equal(targets, expected)
    assert head.training  # the probe restored the mode
    # p[gt] with the window zeroed, by hand: logits (0, l1, l2) over the remaining cells
    l1 = float(weights[0].sum() - weights[0, 4:6, 2:4].sum())
    l2 = float(weights[1].sum() - weights[1, 4:6, 2:4].sum())
    p1 = math.exp(l1) / (1 + math.exp(l1) + math.exp(l2))
    assert p_min[0].item() == pytest.approx(p1, rel=1e-4)
    assert p_min[0] == p_min[2]
    empty_targets, empty_p = hardest_windows(features[:0], labels[:0], head, sliding_windows(h, w))
    assert empty_targets.shape == (0, h, w) and empty_p.shape == (0,)


@pytest.mark.parametrize(
    "drop_fraction, pool_fraction, drop, pool", [(15 / 49, 20 / 49, 15, 20), (1 / 3, 1 / 2, 16, 25)]
)
def test_importance_sampling_draws_the_right_count_from_the_right_pool(
    drop_fraction, pool_fraction, drop, pool
):
    assert cell_counts(7, 7, drop_fraction, pool_fraction) == (drop, pool)
    torch.manual_seed(0)
    logits = torch.randn(6, 7, 7)
    top = logits.flatten(1).argsort(dim=1, descending=True)[:, :pool]
    in_pool = torch.zeros(6, 49, dtype=torch.bool).scatter_(1, top, True)
    counts = torch.zeros(6, 49)
    draws = 300
    for _ in range(draws):
        mask = importance_sample(logits, drop, pool).flatten(1)
        assert mask.dtype == torch.bool
        assert torch.equal(mask.sum(1), torch.full((6,), drop))
        assert not bool((mask & ~in_pool).any())  # only from the top cells
        counts += mask.float()
    # every cell of the pool is drawn, each about drop / pool of the time
    frequency = counts[in_pool] / draws
    assert bool((frequency > drop / pool - 0.15).all()) and bool((frequency < drop / pool + 0.15).all())
    assert float(counts[~in_pool].sum()) == 0


def test_importance_sampling_follows_the_global_rng_and_handles_no_rois():
    logits = torch.randn(4, 7, 7)
    torch.manual_seed(3)
    a = importance_sample(logits, 15, 20)
    torch.manual_seed(3)
    b = importance_sample(logits, 15, 20)
    assert torch.equal(a, b)
    assert importance_sample(logits[:0], 15, 20).shape == (0, 7, 7)


def test_the_drop_rule_is_strict_and_the_loss_only_learns_from_masks_meeting_it():
    p_before = torch.tensor([0.9, 0.9, 0.5, 0.3])
    p_after = torch.tensor([0.5, 0.8, 0.45, 0.1])
    valid = meets_drop_rule(p_before, p_after, 0.1)
    assert valid.tolist() == [True, False, False, True]  # 0.9 - 0.8 is not more than 0.1
    logits = torch.randn(4, 7, 7, requires_grad=True)
    drop = torch.rand(4, 7, 7) < 0.3
    loss = joint_loss(logits, drop, valid, normaliser=10 * 49)
    (grad,) = torch.autograd.grad(loss, logits)
    assert bool(grad[~valid].eq(0).all()) and bool(grad[valid].ne(0).all())
    bce = F.binary_cross_entropy_with_logits(logits[valid], drop[valid].float(), reduction="sum")
    assert loss.item() == pytest.approx(bce.item() / (10 * 49), rel=1e-6)


@pytest.mark.parametrize("c, h, w", [(128, 7, 7), (3, 5, 9), (16, 14, 14)])
def test_asdn_network_is_four_convs_and_one_logit_map_for_any_shape(c, h, w):
    net = ASDN(c)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [256, 256, 256, 256, 1]
    assert all(m.kernel_size == (3, 3) for m in convs)
    assert net(torch.randn(2, c, h, w)).shape == (2, h, w)


def test_stage_bounds_and_the_images_that_get_adversaries():
    assert stage_bounds(80000, None, 0.125, None, 0.125) == (10000, 20000)
    assert stage_bounds(100, 3, 0.5, 4, 0.5) == (3, 7)
    assert [adversarial_images(i, 2, 0.5) for i in range(3)] == [[False, True]] * 3
    assert [adversarial_images(i, 1, 0.5)[0] for i in range(4)] == [False, True, False, True]
    assert adversarial_images(5, 4, 1.0) == [True] * 4 and adversarial_images(5, 4, 0.0) == [False] * 4
    third = [x for i in range(30) for x in adversarial_images(i, 2, 1 / 3)]
    assert sum(third) == 20


def test_stages_and_their_resume():
    method = build_method(
        {"name": "asdn", "warmup_iters": 2, "pretrain_fraction": 0.25, "lr": 0.01}
    )  # pretrain: 0.25 * 8 = 2
    method.max_iters = 8
    stages = []
    for i in range(8):
        method.set_iteration(i)
        method.begin_step()
        stages.append((method.stage, method.trains_detector(i)))
    assert stages == [("warmup", True)] * 2 + [("pretrain", False)] * 2 + [("joint", True)] * 4
    saved = method.state_dict()
    resumed = build_method({"name": "asdn", "warmup_iters": 2, "pretrain_fraction": 0.25, "lr": 0.01})
    resumed.max_iters = 40  # a longer run: the saved boundaries stay
    resumed.load_state_dict(saved)
    assert resumed.iteration == 7 and resumed.max_iters == 40  # (begin_step does not tick the clock)
    resumed.set_iteration(3)
    resumed.begin_step()
    assert resumed.stage == "pretrain"
    changed = build_method({"name": "asdn", "warmup_iters": 5, "pretrain_fraction": 0.25})
    changed.max_iters = 8
    changed.load_state_dict(saved)
    changed.set_iteration(3)
    changed.begin_step()  # changed stage parameters win
    assert changed.stage == "warmup"
    other = build_method({"name": "ia"})
    with pytest.raises(ValueError, match="method 'asdn'.*cannot be loaded into method 'ia'"):
        other.load_state_dict(saved)


def _asdn_method(**params):
    method = build_method(
        {"name": "asdn", "warmup_iters": 0, "pretrain_iters": 0, "image_share": 1.0, **params}
    )
    method.asdn = ASDN(1, width=8)
    return method


def test_joint_stage_targets_only_the_masks_that_lowered_p_gt_enough():
    h = w = 7
    weights = torch.zeros(2, h, w)
    weights[0] = 0.2  # class 1 depends on every cell: p[gt] 0.86 -> 0.23 for any 15-cell drop
    head = CellHead(weights, background=8.0)  # class 2 depends on nothing: no drop lowers p[gt]
    features = torch.ones(8, 1, h, w)
    labels = torch.tensor([1, 2, 0, 1, 1, 2, 0, 1])  # two images of four RoIs
    method = _asdn_method(image_share=0.5)
    at_step(method, 0, 10)
    batch = _batch(labels, images=2)
    out = method(features.clone().requires_grad_(True), replace(batch, head=head))

    dropped = out.features.detach() == 0
    assert not bool(dropped[:4].any())  # the first image stays clean
    assert dropped[[4, 5, 7]].flatten(1).sum(1).tolist() == [15, 15, 15]  # foreground RoIs only
    assert not bool(dropped[6].any())
    assert out.stats["asdn_valid"] == pytest.approx(2 / 3)  # the two class-1 RoIs
    logits = method.asdn(features[[4, 7]])
    bce = F.binary_cross_entropy_with_logits(logits, dropped[[4, 7], 0].float(), reduction="sum")
    expected = 0.0025 * bce / (8 * h * w)  # the code: normalised by all sampled RoIs and cells
    assert out.losses["loss_asdn"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_pretraining_learns_the_hardest_window_of_foreground_rois_and_leaves_features():
    h = w = 7
    weights = torch.full((2, h, w), 0.1)
    weights[0, 2:4, 4:6] = 2.0
    head = CellHead(weights)
    method = _asdn_method(pretrain_iters=1)
    at_step(method, 0, 10)
    assert method.stage == "pretrain" and not method.trains_detector(0)
    features = torch.ones(3, 1, h, w)
    labels = torch.tensor([1, 0, 1])
    batch = _batch(labels)
    with torch.no_grad():  # the engine's forward while the detector is frozen
        out = method(features, replace(batch, head=head))
    assert out.features is features
    loss = out.losses["loss_asdn"]
    assert loss.requires_grad
    target = torch.zeros(2, h, w)
    target[:, 2:4, 4:6] = 1
    expected = F.binary_cross_entropy_with_logits(method.asdn(features[[0, 2]]), target)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    grads = torch.autograd.grad(loss, adversary_parameters(method))
    assert all(g is not None for g in grads) and head.weights.grad is None


def test_no_foreground_still_gives_every_adversary_parameter_a_zero_gradient():
    method = _asdn_method()
    at_step(method, 0, 10)
    labels = torch.zeros(4, dtype=torch.int64)
    batch = _batch(labels)
    features = torch.rand(4, 1, 7, 7)
    out = method(features, replace(batch, head=CellHead(torch.ones(2, 7, 7))))
    assert torch.equal(out.features, features)
    grads = torch.autograd.grad(out.losses["loss_asdn"], adversary_parameters(method))
    assert all(bool(g.eq(0).all()) for g in grads)


def test_fixed_asdn_has_no_joint_loss_and_half_the_images_are_masked():
    method = build_method(method_params({"name": "fixed-asdn", "warmup_iters": 0, "pretrain_iters": 0}))
    assert method.params.joint_update is False
    assert build_method({"name": "fixed-asdn"}).params.joint_update is False  # the preset, also here
    method.asdn = ASDN(1, width=8)
    at_step(method, 0, 10)
    labels = torch.tensor([1, 1, 1, 1])
    batch = _batch(labels, images=2)
    features = torch.rand(4, 1, 7, 7) + 0.5
    out = method(features, replace(batch, head=CellHead(torch.ones(2, 7, 7))))
    assert out.losses == {}
    assert torch.equal(out.features[:2], features[:2])  # the first image stays clean
    assert (out.features[2:] == 0).flatten(1).sum(1).tolist() == [15, 15]


def test_the_zero_loss_gives_dense_zero_gradients():
    method = _asdn_method()
    at_step(method, 0, 10)
    labels = torch.zeros(2, dtype=torch.int64)
    batch = _batch(labels)
    out = method(torch.rand(2, 1, 7, 7), replace(batch, head=CellHead(torch.ones(2, 7, 7))))
    grads = torch.autograd.grad(out.losses["loss_asdn"], adversary_parameters(method))
    assert all(g.is_contiguous() and bool(g.eq(0).all()) for g in grads)  # safe for an in-place all_reduce
