"""Where a detector attends on its RoI features: the quantities behind the IA paper's Fig. 1, 2, 5, 6.

For boxes in an image, the detector's own RoI pooling gives the features ``F`` ``(N, C, H, W)``
(7 x 7 cells); the gradient ``G`` of each RoI's class logit gives ``w = mean_hw(G)`` and the
attention ``M = sum_c w_c F_c`` (Eq. 1, Grad-CAM without ReLU), exactly as the IA training
method computes them (:func:`~iadet.modeling.methods.inverted_attention.gt_score_gradients`,
:func:`~iadet.modeling.methods.inverted_attention.attention_weights`). Channel ``c`` contributes
``w_c F_c`` to ``M``; under the inverted attention ``A`` (Eq. 4) it becomes ``w_c F_c A_c``.

"Top channels most affected by IA" (Fig. 1's first four columns) are ranked here by the
attention energy IA removes from a channel, ``sum_hw |w_c F_c| (1 - A_c)``: with the paper's
soft spatial+channel mask that is among the 80% of channels with the largest ``w`` (those Eq. 3
hands to the spatial inversion), the ones whose most attended cells carry most of the signal.

The model is always run in eval mode (its modes are restored after): torchvision's transform
resizes deterministically then, and no normalisation statistic is updated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from iadet.modeling.methods.inverted_attention import (
    attention_weights,
    gt_score_gradients,
    inverted_attention_mask,
)
from iadet.modeling.methods.probes import eval_mode, gt_probabilities, pool_rois

__all__ = [
    "RoIAttention",
    "channel_attention",
    "detect",
    "eval_mode",
    "pool_rois",
    "roi_attention",
    "top_affected_channels",
]


@dataclass
class RoIAttention:
    """The attention of RoIs (Eq. 1). ``N`` RoIs, ``C`` channels, ``H x W`` cells (7 x 7)."""

    boxes: Tensor
    """``(N, 4)`` in the original image's pixels."""
    labels: Tensor
    """``(N,)`` the class whose logit is differentiated (0 = background)."""
    features: Tensor
    """``(N, C, H, W)`` RoI-pooled features ``F``."""
    grads: Tensor
    """``(N, C, H, W)`` ``dS_label / dF``."""
    weights: Tensor
    """``(N, C)`` ``w = mean_hw(G)``."""
    attention: Tensor
    """``(N, H, W)`` ``M = sum_c w_c F_c``."""
    probability: Tensor
    """``(N,)`` the softmax probability of ``labels`` under the box head."""

    def inverted(self, **mask_options) -> Tensor:
        """The inverted attention ``A`` (Eq. 2-4) of these RoIs, broadcastable to ``features``.

        ``mask_options`` are :func:`inverted_attention_mask`'s (strategy, orientation, ratios,
        generator); the defaults are the paper's (soft, spatial+channel, 1/3, 0.8).
        """
        return inverted_attention_mask(self.features, self.grads, **mask_options)


def roi_attention(model: nn.Module, image: Tensor, boxes: Tensor, labels: Tensor) -> RoIAttention:
    """Eq. 1 for ``boxes`` of one ``image`` (float ``(3, H, W)`` in [0, 1]), differentiating ``labels``.

    The box head runs in eval mode and float32; no parameter gradient is touched.
    """
    device = image.device
    labels = labels.to(device=device, dtype=torch.int64)
    features = pool_rois(model, [image], [boxes])
    score_fn = model.roi_heads.score_fn
    grads = gt_score_gradients(features, labels, score_fn)
    weights, attention = attention_weights(features, grads)
    return RoIAttention(
        boxes=boxes.detach().float().cpu(),
        labels=labels.cpu(),
        features=features.cpu(),
        grads=grads.cpu(),
        weights=weights.cpu(),
        attention=attention.cpu(),
        probability=gt_probabilities(features, labels, score_fn).cpu(),
    )


def channel_attention(features: Tensor, weights: Tensor, mask: Tensor | None = None) -> Tensor:
    """Each channel's share of ``M``: ``w_c F_c`` (times ``A`` when ``mask`` is given), ``(N, C, H, W)``.

    Summed over ``C`` it is ``M`` (Eq. 1), or the attention left after inversion.
    """
    maps = weights[:, :, None, None] * features
    return maps if mask is None else maps * mask.to(maps.dtype)


def top_affected_channels(features: Tensor, weights: Tensor, mask: Tensor, k: int = 4) -> Tensor:
    """``(N, k)`` per RoI, the channels whose attention IA removes most: ``sum_hw |w_c F_c| (1 - A_c)``.

    Ties (e.g. channels IA leaves alone) are broken by ``|w_c|``, largest first.
    """
    energy = channel_attention(features, weights).abs()
    removed = (energy * (1.0 - mask.to(energy.dtype))).sum(dim=(2, 3))
    by_weight = weights.abs().argsort(dim=1, descending=True, stable=True)
    order = removed.gather(1, by_weight).argsort(dim=1, descending=True, stable=True)
    return by_weight.gather(1, order)[:, :k]


@torch.no_grad()
def detect(
    model: nn.Module, image: Tensor, *, score_thresh: float = 0.5, max_objects: int = 4
) -> tuple[Tensor, Tensor, Tensor]:
    """``(boxes (N, 4), labels (N,), scores (N,))`` of the highest-scoring detections in ``image``.

    At most ``max_objects`` with score at least ``score_thresh``, by score; in original-image pixels.
    """
    with eval_mode(model):
        out = model([image])[0]
    keep = (out["scores"] >= score_thresh).nonzero().flatten()[:max_objects]
    return out["boxes"][keep].float().cpu(), out["labels"][keep].cpu(), out["scores"][keep].float().cpu()
