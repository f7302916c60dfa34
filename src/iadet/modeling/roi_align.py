"""RoIAlign with a channel-vectorised backward on the CPU: the same forward, the same gradient, faster.

torchvision's CPU ``_roi_align_backward`` loops over every (RoI, channel, bin, sample) and recomputes
the bilinear weights for each channel; on the built-in benchmark's training step it is about a
third of the step (``benchmarks/roi_align_backward.py``). RoIAlign is linear in its input with
weights that do not depend on the channel, so its backward is one scatter-add of
``weight x grad_output`` rows over all channels at once. :class:`RoIAlignFunction` keeps
torchvision's forward (``torchvision.ops.roi_align``) and computes that backward with the kernel's
own sampling rules (``aligned``, a fixed ``sampling_ratio > 0``; the adaptive ``sampling_ratio <= 0``
uses torchvision's backward). The gradient is the same sum in another order: equal to float32
rounding, not bit for bit, and deterministic.

The RoI coordinates stay float32 whatever the features' dtype: in bfloat16 a box edge at 613.7
pixels is 612.0 (and 613.5 in float16), so casting them to the features' dtype under autocast
would move the boxes. bfloat16/float16 features are pooled in float32 (as torchvision's autocast
wrapper of ``roi_align`` does; its CPU kernel has no bfloat16) and the result and gradient cast back.

:func:`multiscale_roi_align` is ``MultiScaleRoIAlign.forward`` with it, used by
:class:`~iadet.modeling.roi_heads.RoIHeadsWithMethod` in training on the CPU. On a GPU and at inference
the pooling is torchvision's own; the model's modules and keys are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops import poolers as _poolers


def sample_points(
    rois: Tensor, spatial_scale: float, oh: int, ow: int, ratio: int, aligned: bool, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """Bilinear corners and weights of every sample of every bin, as torchvision's CPU kernel computes them.

    Args:
        rois: ``(K, 5)`` ``batch_index, x1, y1, x2, y2`` in image pixels.
    Returns:
        ``index`` ``(K, oh * ow, ratio * ratio * 4)`` int64 into the ``H * W`` cells of the RoI's
        image and ``weights`` of the same shape (already divided by the ``ratio ** 2`` samples per bin;
        0 for samples outside the map).
    """
    dev, dt = rois.device, rois.dtype
    offset = 0.5 if aligned else 0.0
    start_w = rois[:, 1] * spatial_scale - offset
    start_h = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - start_w
    roi_h = rois[:, 4] * spatial_scale - offset - start_h
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / oh, roi_w / ow
    ph = torch.arange(oh, device=dev, dtype=dt)
    pw = torch.arange(ow, device=dev, dtype=dt)
    i = (torch.arange(ratio, device=dev, dtype=dt) + 0.5) / ratio
    y = start_h[:, None, None] + (ph[None, :, None] + i[None, None, :]) * bin_h[:, None, None]  # (K, oh, r)
    x = start_w[:, None, None] + (pw[None, :, None] + i[None, None, :]) * bin_w[:, None, None]  # (K, ow, r)
    y = y[:, :, None, :, None].expand(-1, oh, ow, ratio, ratio)
    x = x[:, None, :, None, :].expand(-1, oh, ow, ratio, ratio)
    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y, x = y.clamp(min=0), x.clamp(min=0)
    y_low, x_low = y.floor().long(), x.floor().long()
    top_y, top_x = y_low >= height - 1, x_low >= width - 1
    y_low = torch.where(top_y, height - 1, y_low)
    x_low = torch.where(top_x, width - 1, x_low)
    y_high = torch.where(top_y, y_low, y_low + 1)
    x_high = torch.where(top_x, x_low, x_low + 1)
    y = torch.where(top_y, y_low.to(dt), y)
    x = torch.where(top_x, x_low.to(dt), x)
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    weights = torch.stack([hy * hx, hy * lx, ly * hx, ly * lx], -1) / max(ratio * ratio, 1)
    index = torch.stack(
        [y_low * width + x_low, y_low * width + x_high, y_high * width + x_low, y_high * width + x_high], -1
    )
    weights = weights.masked_fill(outside[..., None], 0.0)
    index = index.masked_fill(outside[..., None], 0)
    k = rois.shape[0]
    per_bin = ratio * ratio * 4
    return index.reshape(k, oh * ow, per_bin), weights.reshape(k, oh * ow, per_bin)


class RoIAlignFunction(torch.autograd.Function):
    """``torchvision.ops.roi_align(input, rois, (oh, ow), spatial_scale, sampling_ratio, aligned)``
    with the channel-vectorised backward. ``input`` ``(B, C, H, W)`` of any floating dtype, ``rois`` ``(K, 5)``
    float32 (float64 for float64 ``input``) -> ``(K, C, oh, ow)`` in ``input``'s dtype, computed in ``rois``'."""

    @staticmethod
    def forward(ctx, input, rois, spatial_scale, oh, ow, sampling_ratio, aligned):  # noqa: D102
        # ``rois`` come float32 (float64 for float64 features): the pooling runs in their dtype
        ctx.save_for_backward(rois)
        ctx.args = (input.shape, input.dtype, spatial_scale, oh, ow, sampling_ratio, aligned)
        out = roi_align(input.to(rois.dtype), rois, (oh, ow), spatial_scale, sampling_ratio, aligned)
        return out.to(input.dtype)

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        (rois,) = ctx.saved_tensors
        (b, c, h, w), dtype, spatial_scale, oh, ow, ratio, aligned = ctx.args
        grad_out = grad_out.to(rois.dtype)
        if ratio <= 0:  # adaptive sampling: a different sample count per RoI
            grad = torch.ops.torchvision._roi_align_backward(
                grad_out.contiguous(), rois, spatial_scale, oh, ow, b, c, h, w, ratio, aligned
            )
            return grad.to(dtype), None, None, None, None, None, None
        index, weights = sample_points(rois, spatial_scale, oh, ow, ratio, aligned, h, w)
        index = index + (rois[:, 0].long() * (h * w))[:, None, None]
        g = grad_out.reshape(rois.shape[0], c, oh * ow).transpose(1, 2)  # (K, P, C)
        rows = (weights[..., None] * g[:, :, None, :]).reshape(-1, c)
        grad = torch.zeros(b * h * w, c, dtype=grad_out.dtype, device=grad_out.device)
        grad.index_add_(0, index.reshape(-1), rows)
        grad = grad.view(b, h, w, c).permute(0, 3, 1, 2).contiguous().to(dtype)
        return grad, None, None, None, None, None, None


def _roi_align(input: Tensor, rois: Tensor, output_size: list[int], scale: float, ratio: int) -> Tensor:
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    coords = torch.float64 if input.dtype == torch.float64 else torch.float32  # never the features' bf16/fp16
    return RoIAlignFunction.apply(input, rois.to(coords), scale, oh, ow, ratio, False)


def multiscale_roi_align(
    pool: MultiScaleRoIAlign,
    features: dict[str, Tensor],
    boxes: list[Tensor],
    image_shapes: list[tuple[int, int]],
) -> Tensor:
    """``pool(features, boxes, image_shapes)`` computed with :class:`RoIAlignFunction` on every level.

    The same level assignment (torchvision's ``LevelMapper``, FPN's Eq. 1), scales and output order
    as ``MultiScaleRoIAlign.forward``; ``(sum_i R_i, C, oh, ow)``.
    """
    x = _poolers._filter_input(features, pool.featmap_names)
    if pool.scales is None or pool.map_levels is None:
        pool.scales, pool.map_levels = _poolers._setup_scales(
            x, image_shapes, pool.canonical_scale, pool.canonical_level
        )
    rois = _poolers._convert_to_roi_format(boxes)
    size, ratio, scales = pool.output_size, pool.sampling_ratio, pool.scales
    if len(x) == 1:
        return _roi_align(x[0], rois, size, scales[0], ratio)
    levels = pool.map_levels(boxes)
    first = x[0]
    result = first.new_zeros((len(rois), first.shape[1], *size))
    for level, (feature, scale) in enumerate(zip(x, scales)):
        idx = torch.where(levels == level)[0]
        result[idx] = _roi_align(feature, rois[idx], size, scale, ratio).to(result.dtype)
    return result


def pool_box_features(
    pool: torch.nn.Module,
    features: dict[str, Tensor],
    boxes: list[Tensor],
    image_shapes: list[tuple[int, int]],
) -> Tensor:
    """The box head's RoI pooling in training: :func:`multiscale_roi_align` for torchvision's
    ``MultiScaleRoIAlign`` on the CPU when gradients are recorded, else ``pool`` itself."""
    fast = (
        type(pool) is MultiScaleRoIAlign
        and torch.is_grad_enabled()
        and all(v.device.type == "cpu" for v in features.values())
    )
    return (
        multiscale_roi_align(pool, features, boxes, image_shapes)
        if fast
        else pool(features, boxes, image_shapes)
    )
