"""The CPU RoIAlign backward: torchvision's forward, the same gradient to float32 rounding, every level."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

from iadet.modeling.roi_align import RoIAlignFunction, multiscale_roi_align, pool_box_features


def _rois(g: torch.Generator, n: int, batch: int, size: float) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size * 0.6 + 0.5
    rois = torch.cat([torch.randint(0, batch, (n, 1), generator=g).float(), xy - wh / 4, xy + wh], 1)
    rois[:3, 1:] = torch.tensor(
        [[-30.0, -30.0, 1e4, 1e4], [0.0, 0.0, 0.2, 0.2], [size - 1, size - 1, size, size]]
    )
    return rois  # one RoI larger than the map, one tiny, one on the far edge


@pytest.mark.parametrize("ratio, aligned", [(1, False), (2, False), (2, True), (0, False)])
def test_forward_is_torchvisions_and_the_gradient_matches(ratio, aligned):
    g = torch.Generator().manual_seed(ratio)
    x = torch.randn(2, 6, 9, 11, generator=g)
    rois = _rois(g, 40, 2, 80.0)
    grad_out = torch.randn(40, 6, 7, 7, generator=g)
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    ya = roi_align(a, rois, (7, 7), 1 / 8, ratio, aligned)
    yb = RoIAlignFunction.apply(b, rois, 1 / 8, 7, 7, ratio, aligned)
    assert torch.equal(ya, yb)
    ya.backward(grad_out)
    yb.backward(grad_out)
    assert a.grad.abs().sum() > 0
    assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-5 * a.grad.abs().max().item())


def test_gradcheck_in_double():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    rois = _rois(g, 5, 1, 40.0).double()
    assert torch.autograd.gradcheck(lambda t: RoIAlignFunction.apply(t, rois, 1 / 8, 3, 3, 2, False), (x,))


def test_multiscale_levels_match_torchvisions_pooler():
    g = torch.Generator().manual_seed(1)
    features = OrderedDict((str(i), torch.randn(2, 4, 64 // 2**i, 48 // 2**i, generator=g)) for i in range(4))
    boxes = [_rois(g, 30, 1, 180.0)[:, 1:].clamp(0, 190) for _ in range(2)]
    boxes = [torch.cat([b[:, :2], torch.maximum(b[:, 2:], b[:, :2] + 1)], 1) for b in boxes]
    boxes[1][:4] = torch.tensor(
        [[0.0, 0.0, 190.0, 250.0], [5.0, 5.0, 150.0, 180.0], [0.0, 0.0, 120.0, 110.0], [9, 9, 99, 99]]
    )
    shapes = [(256, 192), (256, 192)]
    ours = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    theirs = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    fa = OrderedDict((k, v.clone().requires_grad_(True)) for k, v in features.items())
    fb = OrderedDict((k, v.clone().requires_grad_(True)) for k, v in features.items())
    ya = theirs(fa, boxes, shapes)
    yb = multiscale_roi_align(ours, fb, boxes, shapes)
    assert torch.equal(ya, yb) and ours.scales == theirs.scales
    w = torch.randn(ya.shape, generator=g)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    levels = 0
    for k in features:
        levels += bool(fa[k].grad.abs().sum() > 0)
        assert torch.allclose(fa[k].grad, fb[k].grad, rtol=1e-5, atol=1e-5 * fa[k].grad.abs().max().item()), k
    assert levels >= 2  # RoIs on two FPN levels, none on the others


def test_other_pools_and_no_grad_use_the_module_itself():
    class Pool(torch.nn.Module):
        def forward(self, features, boxes, shapes):
            return torch.ones(1)

    assert torch.equal(pool_box_features(Pool(), {"0": torch.zeros(1, 1, 2, 2)}, [], []), torch.ones(1))


@pytest.mark.parametrize("ratio", [2, 0])
@pytest.mark.parametrize("autocast", [False, True])
def test_low_precision_features_pool_at_the_float32_coordinates(ratio, autocast):
    # bfloat16 features (CPU autocast, or a bfloat16 model): the boxes must stay where they are.
    # In bfloat16 613.7 is 612.0, so pooling at coordinates cast to the features' dtype moves far boxes
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 8, 160, 160, generator=g).bfloat16()  # stride 4 of a 640 x 640 image
    boxes = torch.tensor([[601.3, 589.9, 637.7, 631.1], [413.7, 517.3, 613.7, 570.9], [3.3, 5.1, 40.2, 33.3]])
    pool = MultiScaleRoIAlign(["0"], 7, ratio)
    a = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        ours = multiscale_roi_align(pool, OrderedDict([("0", a)]), [boxes], [(640, 640)])
    assert ours.dtype == torch.bfloat16
    b = x.float().requires_grad_(True)
    reference = roi_align(b, [boxes], (7, 7), 1 / 4, ratio)
    # within bfloat16's rounding of the pooled values (|x| < 5: spacing <= 1/32)
    assert torch.allclose(ours.float(), reference, rtol=0, atol=2**-5)
    assert (ours.float() - reference).abs().mean() < 2**-8
    w = torch.randn(reference.shape, generator=g)
    (ours.float() * w).sum().backward()
    (reference * w).sum().backward()
    assert a.grad.dtype == torch.bfloat16
    assert torch.allclose(a.grad.float(), b.grad, rtol=0, atol=2**-5 * b.grad.abs().max().item())
