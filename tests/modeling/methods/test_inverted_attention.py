"""Inverted Attention: Eq. 1-4 on hand-made tensors, properties, the probe's guarantees, RoI selection."""

from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from iadet import gt_score_gradients, inverted_attention_mask
from iadet.modeling.methods.base import RoIBatch
from iadet.modeling.methods.inverted_attention import (
    IAParams,
    InvertedAttention,
    attention_weights,
    select_by_drop,
)

from conftest import at_step


class LinearHead(nn.Module):
    """logits = W vec(F) + b, with a dropout that would randomise gradients in train mode."""

    def __init__(self, c=3, h=2, w=2, k=4):
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(c * h * w, k)

    def forward(self, x):
        return self.fc(self.drop(x.flatten(1)))


def test_gradients_match_the_analytic_linear_head():
    torch.manual_seed(0)
    head = LinearHead()
    features = torch.randn(5, 3, 2, 2)
    labels = torch.tensor([0, 1, 3, 2, 1])
    grads = gt_score_gradients(features, labels, head)
    expected = head.fc.weight[labels].reshape(5, 3, 2, 2)
    torch.testing.assert_close(grads, expected)


def test_probe_touches_no_parameter_and_restores_train_mode():
    head = LinearHead().train()
    features = torch.randn(4, 3, 2, 2)  # no requires_grad
    a = gt_score_gradients(features, torch.tensor([1, 1, 2, 0]), head)
    b = gt_score_gradients(features, torch.tensor([1, 1, 2, 0]), head)
    assert torch.equal(a, b)  # dropout was off: deterministic
    assert head.training and head.drop.training
    assert all(p.grad is None for p in head.parameters())
    assert not a.requires_grad and not features.requires_grad


def test_probe_works_on_a_bound_method_of_a_module():
    head = LinearHead().train()
    grads = gt_score_gradients(torch.randn(2, 3, 2, 2), torch.tensor([1, 2]), head.forward)
    assert head.training and grads.shape == (2, 3, 2, 2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_and_autocast(dtype):
    head = LinearHead()
    features = torch.randn(3, 3, 2, 2).to(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        grads = gt_score_gradients(features, torch.tensor([1, 2, 3]), head)
    assert grads.dtype == torch.float32
    torch.testing.assert_close(grads, head.fc.weight[[1, 2, 3]].reshape(3, 3, 2, 2))
    mask = inverted_attention_mask(features, grads)
    assert mask.dtype == dtype


def test_eq1_weights_and_attention():
    features = torch.arange(8, dtype=torch.float32).reshape(1, 2, 2, 2)
    grads = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[0.0, 2.0], [2.0, 0.0]]]])
    w, attention = attention_weights(features, grads)
    torch.testing.assert_close(w, torch.tensor([[1.0, 1.0]]))
    torch.testing.assert_close(attention, features[:, 0] + features[:, 1])


def _one_roi(attention_map, channel_weights):
    """Features/gradients whose Eq. 1 gives the requested M (for C=1) or w."""
    c = len(channel_weights)
    h, w = attention_map.shape
    features = attention_map.expand(1, c, h, w).clone() / c
    grads = torch.tensor(channel_weights, dtype=torch.float32).view(1, c, 1, 1).expand(1, c, h, w).clone()
    return features, grads


def test_soft_spatial_zeroes_the_top_third_of_cells():
    m = torch.tensor([[9.0, 1.0, 2.0], [8.0, 3.0, 7.0], [0.0, 4.0, 5.0]])
    features, grads = _one_roi(m, [1.0])
    mask = inverted_attention_mask(features, grads, orientation="spatial")  # round(9/3) = 3 cells
    assert mask.shape == (1, 1, 3, 3)
    expected = (m < 7.0).float()  # 9, 8, 7 are the top 3
    torch.testing.assert_close(mask[0, 0], expected)


def test_soft_channel_zeroes_the_top_channels():
    features = torch.ones(1, 5, 2, 2)
    grads = torch.tensor([0.1, 0.5, 0.3, 0.9, 0.2]).view(1, 5, 1, 1).expand(1, 5, 2, 2).clone()
    mask = inverted_attention_mask(
        features, grads, orientation="channel", channel_ratio=0.4
    )  # round(2.0) = 2
    assert mask.shape == (1, 5, 1, 1)
    torch.testing.assert_close(mask.flatten(), torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0]))


def test_eq4_spatial_only_on_channels_with_zero_channel_mask():
    torch.manual_seed(0)
    features = torch.rand(2, 6, 3, 3)
    grads = torch.randn(2, 6, 3, 3)
    a_s = inverted_attention_mask(features, grads, orientation="spatial")
    a_c = inverted_attention_mask(features, grads, orientation="channel", channel_ratio=0.5)
    both = inverted_attention_mask(features, grads, orientation="spatial+channel", channel_ratio=0.5)
    assert both.shape == (2, 6, 3, 3)
    expected = torch.where(a_c == 0, a_s.expand_as(both), torch.ones_like(both))
    torch.testing.assert_close(both, expected)


def test_hard_threshold_and_constant_rows():
    m = torch.tensor([[0.0, 10.0], [4.0, 6.0]])  # normalised: 0, 1, 0.4, 0.6
    features, grads = _one_roi(m, [1.0])
    mask = inverted_attention_mask(features, grads, strategy="hard", orientation="spatial")
    torch.testing.assert_close(mask[0, 0], torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    flat, flat_grads = _one_roi(torch.full((2, 2), 3.0), [1.0])
    assert inverted_attention_mask(flat, flat_grads, strategy="hard", orientation="spatial").eq(1).all()
    assert inverted_attention_mask(flat, flat_grads, strategy="overturn", orientation="spatial").eq(1).all()


def test_overturn_is_one_minus_normalised_attention():
    m = torch.tensor([[0.0, 10.0], [4.0, 6.0]])
    features, grads = _one_roi(m, [1.0])
    mask = inverted_attention_mask(features, grads, strategy="overturn", orientation="spatial")
    torch.testing.assert_close(mask[0, 0], torch.tensor([[1.0, 0.0], [0.6, 0.4]]))


def test_random_has_the_soft_count_and_follows_the_generator():
    features = torch.rand(4, 8, 7, 7)
    grads = torch.randn(4, 8, 7, 7)
    a = inverted_attention_mask(
        features, grads, strategy="random", generator=torch.Generator().manual_seed(1)
    )
    b = inverted_attention_mask(
        features, grads, strategy="random", generator=torch.Generator().manual_seed(1)
    )
    c = inverted_attention_mask(
        features, grads, strategy="random", generator=torch.Generator().manual_seed(2)
    )
    soft = inverted_attention_mask(features, grads, strategy="soft")
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a == 0).sum() == (soft == 0).sum()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 4),
    c=st.integers(1, 12),
    h=st.integers(1, 8),
    w=st.integers(1, 8),
    ratio=st.floats(0.0, 1.0),
    strategy=st.sampled_from(["soft", "random"]),
    seed=st.integers(0, 1000),
)
def test_soft_and_random_zero_exactly_round_ratio_cells(n, c, h, w, ratio, strategy, seed):
    g = torch.Generator().manual_seed(seed)
    features = torch.rand(n, c, h, w, generator=g)
    grads = torch.randn(n, c, h, w, generator=g)
    mask = inverted_attention_mask(
        features, grads, strategy=strategy, orientation="spatial", spatial_ratio=ratio, generator=g
    )
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    zeros = (mask == 0).flatten(1).sum(1)
    assert zeros.tolist() == [round(ratio * h * w)] * n
    channel = inverted_attention_mask(
        features, grads, strategy=strategy, orientation="channel", channel_ratio=ratio, generator=g
    )
    assert (channel == 0).flatten(1).sum(1).tolist() == [round(ratio * c)] * n


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), strategy=st.sampled_from(["soft", "hard"]))
def test_binary_masks_for_soft_and_hard(seed, strategy):
    g = torch.Generator().manual_seed(seed)
    features, grads = torch.rand(3, 5, 4, 4, generator=g), torch.randn(3, 5, 4, 4, generator=g)
    mask = inverted_attention_mask(features, grads, strategy=strategy)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_unknown_strategy_is_a_config_error():
    from iadet.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown IA strategy 'sof'"):
        inverted_attention_mask(torch.rand(1, 2, 2, 2), torch.rand(1, 2, 2, 2), strategy="sof")
    with pytest.raises(ConfigError, match="method.select: unknown value 'drops'"):
        InvertedAttention(IAParams(select="drops"))


def _batch(labels):
    n = len(labels)
    return RoIBatch(
        labels, [torch.zeros(n, 4)], torch.zeros(n, 4), torch.zeros(n, dtype=torch.long), [(10, 10)]
    )


def test_only_the_selected_rois_are_masked_and_gradients_reach_the_features():
    torch.manual_seed(0)
    head = LinearHead(c=4, h=3, w=3, k=3)
    method = InvertedAttention(IAParams(select="random", roi_ratio=0.25))
    features = torch.rand(8, 4, 3, 3, requires_grad=True)
    labels = torch.tensor([1, 0, 2, 0, 0, 1, 0, 0])
    batch = _batch(labels)
    out = method(features, replace(batch, head=head))
    changed = (out.features != features).flatten(1).any(1)
    assert changed.sum() == 2  # round(0.25 * 8) RoIs, and only those
    assert out.stats["ia_masked_fraction"] == pytest.approx(0.25)
    out.features.sum().backward()
    # F_new = F * A with A constant: dF_new/dF is A (0 at the inverted cells, 1 elsewhere)
    torch.testing.assert_close(
        features.grad, (out.features.detach() != 0).float() + (features.detach() == 0).float()
    )


def test_select_all_masks_every_roi_and_ramps_scale_the_ratio():
    head = LinearHead(c=4, h=3, w=3, k=3)
    features, labels = torch.rand(6, 4, 3, 3), torch.tensor([1, 2, 0, 1, 0, 2])
    out = InvertedAttention(IAParams(select="all"))(features, replace(_batch(labels), head=head))
    assert (out.features != features).flatten(1).any(1).all()
    ramp = InvertedAttention(IAParams(ramp="triangle"))
    at_step(ramp, 0, 100)
    assert ramp.ratio_factor() == 0.0
    at_step(ramp, 50, 100)
    assert ramp.ratio_factor() == 1.0
    warm = InvertedAttention(IAParams(ramp="warmup", ramp_iters=10))
    at_step(warm, 5, 100)
    assert warm.ratio_factor() == 0.5
    at_step(ramp, 0, 100)
    assert torch.equal(ramp(features, replace(_batch(labels), head=head)).features, features)


def test_drop_selection_follows_the_released_code():
    # foreground changes: 5 RoIs -> threshold index round(5 * 0.2) = 1 -> strictly above the 2nd largest
    change = torch.tensor([0.5, 0.3, 0.0, 0.3, 0.1, 0.2, 0.0, 0.0, 0.0, 0.0])
    labels = torch.tensor([1, 1, 1, 2, 2, 0, 0, 0, 0, 0])
    selected = select_by_drop(change, labels, fg_ratio=0.2, bg_ratio=0.5)
    # fg: sorted 0.5,0.3,0.3,0.1,0.0; threshold = 0.3 -> only 0.5. bg: round(2.5)=2 -> threshold 0.0; 0.2 > 0
    assert selected.tolist() == [True, False, False, False, False, True, False, False, False, False]
    assert not select_by_drop(
        torch.zeros(4), torch.tensor([1, 1, 0, 0]), 0.5, 0.5
    ).any()  # only positive drops


def test_ia_code_masks_only_rois_whose_confidence_dropped():
    torch.manual_seed(0)
    head = LinearHead(c=4, h=3, w=3, k=3)
    method = InvertedAttention(
        IAParams(orientation="spatial", spatial_ratio=18 / 49, select="drop", fg_ratio=0.5, bg_ratio=0.5)
    )
    features = torch.rand(12, 4, 3, 3)
    labels = torch.tensor([1, 2, 1, 2, 1, 2, 0, 0, 0, 0, 0, 0])
    out = method(features, replace(_batch(labels), head=head))
    masked = (out.features != features).flatten(1).any(1)
    assert 0 < masked.sum() <= 6
    with torch.no_grad():
        p_before = head.eval()(features).softmax(1).gather(1, labels.view(-1, 1)).squeeze(1)
        p_after = head(out.features).softmax(1).gather(1, labels.view(-1, 1)).squeeze(1)
    assert (p_before[masked] - p_after[masked] > 0.01).all()


def test_empty_rois():
    method = InvertedAttention()
    empty = torch.zeros(0, 4, 3, 3)
    labels = torch.zeros(0, dtype=torch.long)
    assert method(empty, replace(_batch(labels), head=LinearHead(c=4, h=3, w=3))).features.shape == (
        0,
        4,
        3,
        3,
    )
    assert gt_score_gradients(empty, labels, LinearHead(c=4, h=3, w=3)).shape == (0, 4, 3, 3)
