"""``jitter``: random scale, aspect-ratio and rotation jitter of the proposals (A-Fast-RCNN Sec. 5.2.1).

The baseline the paper compares the ASTN with: "random changes of scale, aspect ratio and
rotation on the proposals during training". Per proposal, before matching and sampling (so the
labels and regression targets are those of the jittered box):

* scale: both sides times ``s``, ``log s ~ U(-log(1 + scale), log(1 + scale))``;
* aspect ratio: width times ``sqrt(a)``, height divided by ``sqrt(a)``,
  ``log a ~ U(-log(1 + aspect), log(1 + aspect))``; the centre is kept;
* rotation: RoI pooling is axis-aligned, so the rotation is applied to the pooled features of
  every sampled RoI — its sampling grid is rotated about the RoI's centre by ``U(-rotation,
  rotation)`` degrees (bilinear, zeros outside), the same operation as the ASTN with one block.

Jittered boxes are clipped to the extent of the image's proposals (which the RPN clipped to
the image) and kept at least one pixel wide. The ground-truth boxes torchvision adds to the
proposals are not jittered. Draws come from the global torch RNG (exact resume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from iadet.config.methods import MethodParams, check_non_negative, register_preset
from iadet.modeling.methods.astn import rotate_channel_blocks
from iadet.modeling.methods.base import RoIBatch, RoIMethod, RoIOutput

# ----------------------------------------------------------------------------------------------
# parameters and presets


@dataclass
class JitterParams(MethodParams):
    """``method.*`` for ``jitter``."""

    scale: float = 0.1
    """Scale jitter: box sides times a factor in ``[1/(1+scale), 1+scale]`` (log-uniform)."""
    aspect: float = 0.1
    """Aspect-ratio jitter: ``w/h`` times a factor in ``[1/(1+aspect), 1+aspect]`` (log-uniform)."""
    rotation: float = 10.0
    """Rotation jitter of the pooled RoI features, degrees, uniform in ``+-rotation`` (the ASTN's bound)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_non_negative(self, ("scale", "aspect", "rotation"))


register_preset(
    "jitter",
    JitterParams,
    doc="A-Fast-RCNN baseline for the ASTN: random scale/aspect/rotation jitter of proposals",
    family="A-Fast-RCNN",
)


# ----------------------------------------------------------------------------------------------


def _log_uniform(n: int, spread: float, device: torch.device) -> Tensor:
    bound = math.log1p(spread)
    return torch.exp((torch.rand(n, device=device) * 2.0 - 1.0) * bound)


def jitter_boxes(boxes: Tensor, scale: float, aspect: float) -> Tensor:
    """Random scale and aspect-ratio jitter of ``(R, 4)`` ``x1, y1, x2, y2`` boxes about their centres."""
    if boxes.numel() == 0:
        return boxes
    n, device = boxes.shape[0], boxes.device
    s = _log_uniform(n, scale, device).to(boxes.dtype)
    a = _log_uniform(n, aspect, device).to(boxes.dtype).sqrt()
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    w = (boxes[:, 2] - boxes[:, 0]) * s * a
    h = (boxes[:, 3] - boxes[:, 1]) * s / a
    out = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    # clip to the proposals' extent (inside the image) and keep at least one pixel
    x_max, y_max = boxes[:, 2].max(), boxes[:, 3].max()
    x1 = out[:, 0].clamp(min=0).minimum(x_max - 1)
    y1 = out[:, 1].clamp(min=0).minimum(y_max - 1)
    x2 = torch.maximum(out[:, 2].minimum(x_max), x1 + 1)
    y2 = torch.maximum(out[:, 3].minimum(y_max), y1 + 1)
    return torch.stack([x1, y1, x2, y2], dim=1)


class Jitter(RoIMethod, params=JitterParams):
    """Random scale / aspect-ratio / rotation jitter of the proposals (the ASTN's baseline, Sec. 5.2.1)."""

    def transform_proposals(self, proposals: list[Tensor]) -> list[Tensor]:
        p = self.params
        return [jitter_boxes(b.detach(), p.scale, p.aspect) for b in proposals]

    def forward(self, features: Tensor, batch: RoIBatch) -> RoIOutput:
        n = features.shape[0]
        if n == 0 or self.params.rotation == 0:
            return RoIOutput(features)
        degrees = (torch.rand(n, 1, device=features.device) * 2.0 - 1.0) * self.params.rotation
        stats = {"jitter_abs_angle": float(degrees.abs().mean())}
        return RoIOutput(rotate_channel_blocks(features, torch.deg2rad(degrees)), stats=stats)
