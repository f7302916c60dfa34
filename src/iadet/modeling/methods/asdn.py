"""The Adversarial Spatial Dropout Network (A-Fast-RCNN, Wang, Shrivastava, Gupta, CVPR 2017, Sec. 4.2.1).

The network and the operations around it, as plain tensor functions; the training method that
runs the stages is :mod:`iadet.modeling.methods.adversarial`. Conventions: a *drop* mask is
``True`` / 1 at the cells whose features are zeroed on every channel (the paper's ``M_ij = 1``);
a *keep* mask is its complement, multiplied into the features.

* :class:`ASDN` — four 3x3 conv layers (256 channels, ReLU) and a 3x3 conv to one logit map:
  ``(N, C, d, d) -> (N, d, d)``; ``sigmoid`` of it is the heat-map of Fig. 3(b).
* :func:`sliding_windows` / :func:`hardest_windows` — "Initializing ASDN Network": zero every
  ``d/3 x d/3`` window in turn; the window giving the lowest ground-truth probability (the
  highest loss) is the target mask of Eq. 1.
* :func:`importance_sample` — "Thresholding by Sampling": drop a random ``drop_count`` of the
  ``pool_count`` cells with the highest heat (the paper: 1/3 of the cells from the top 1/2; the
  released code: 15 of the top 20 of 49).
* :func:`meets_drop_rule` / :func:`joint_loss` — "Joint Learning": a sampled mask becomes a
  target for Eq. 1 only when it lowered the ground-truth probability by more than 0.1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iadet.modeling.methods.probes import ScoreFn, gt_probabilities


class ASDN(nn.Module):
    """The adversary's mask predictor on RoI-pooled features: ``(N, C, H, W) -> (N, H, W)`` logits.

    As the released code: ``depth`` 3x3 conv layers of ``width`` channels with ReLU, then a 3x3
    conv to one channel; padding 1 everywhere, so any ``H, W`` works. MSRA (He) initialisation
    and zero biases, as the code's pre-training net.
    """

    def __init__(self, in_channels: int, width: int = 256, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        layers.append(nn.Conv2d(channels, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, features: Tensor) -> Tensor:
        return self.body(features).squeeze(1)


# ----------------------------------------------------------------------------------------------
# stage (b): the exhaustive window search


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Start positions of windows of ``size`` at ``stride`` covering ``[0, length)``; the last is
    moved back to end at ``length`` (the code's 7 -> starts 0, 2, 4, 5 for size 2, stride 2)."""
    size = min(max(size, 1), length)
    count = math.ceil((length - size) / max(stride, 1)) + 1
    starts = [min(i * stride, length - size) for i in range(count)]
    return sorted(set(starts))


def sliding_windows(height: int, width: int, size: int = 0, stride: int = 0) -> Tensor:
    """Every occlusion window of Sec. 4.2.1 as a drop mask: ``(K, height, width)`` bool.

    ``size`` 0 means ``round(d / 3)`` per axis (the paper's ``d/3 x d/3``: 2 for d = 7, 2 for
    AlexNet's 6, 5 for a C4 head's 14); ``stride`` 0 means the window size. For 7 x 7 this is
    the released code's 16 windows of 2 x 2 at starts 0, 2, 4, 5.
    """
    sizes = [size or max(1, round_half_up(d / 3)) for d in (height, width)]
    strides = [stride or s for s in sizes]
    rows = window_starts(height, sizes[0], strides[0])
    cols = window_starts(width, sizes[1], strides[1])
    windows = torch.zeros(len(rows) * len(cols), height, width, dtype=torch.bool)
    k = 0
    for r in rows:
        for c in cols:
            windows[k, r : r + sizes[0], c : c + sizes[1]] = True
            k += 1
    return windows


def hardest_windows(
    features: Tensor, labels: Tensor, score_fn: ScoreFn, windows: Tensor
) -> tuple[Tensor, Tensor]:
    """Per RoI, the window whose zeroing gives the lowest ground-truth probability.

    Args:
        features: ``(N, C, H, W)`` RoI features (foreground RoIs in the paper).
        labels: ``(N,)`` ground-truth classes.
        score_fn: the detector's head, probed read-only (eval mode, float32, no gradients).
        windows: ``(K, H, W)`` bool drop masks (:func:`sliding_windows`).

    Returns:
        ``(targets, p_min)``: ``(N, H, W)`` float32 drop mask of the chosen window (1 inside; the
        first window on ties) and ``(N,)`` the ground-truth probability it leaves.
    """
    n, _, h, w = features.shape
    if n == 0:
        return features.new_zeros((0, h, w), dtype=torch.float32), features.new_zeros(
            (0,), dtype=torch.float32
        )
    windows = windows.to(features.device)
    probs = torch.stack(
        [gt_probabilities(features * (~window).to(features.dtype), labels, score_fn) for window in windows],
        dim=1,
    )  # (N, K)
    p_min, best = probs.min(dim=1)
    return windows[best].float(), p_min


# ----------------------------------------------------------------------------------------------
# stage (c): sampling a mask from the heat-map, and which samples teach the ASDN


def cell_counts(height: int, width: int, drop_fraction: float, pool_fraction: float) -> tuple[int, int]:
    """``(drop_count, pool_count)``: cells dropped, and the top cells they are drawn from.

    ``round(fraction * H * W)`` (halves up), with ``drop_count <= pool_count <= H * W``. The
    code's 15/49 and 20/49 give 15 and 20 on 7 x 7; the paper's 1/3 and 1/2 give 16 and 25.
    """
    cells = height * width
    pool = min(cells, max(0, round_half_up(pool_fraction * cells)))
    drop = min(pool, max(0, round_half_up(drop_fraction * cells)))
    return drop, pool


def importance_sample(logits: Tensor, drop_count: int, pool_count: int) -> Tensor:
    """ "Thresholding by Sampling": a binary drop mask from the ASDN heat-map.

    Per RoI, the ``pool_count`` cells with the highest ``logits`` (ties: the earlier cell in
    row-major order) form the pool; ``drop_count`` of them, uniformly without replacement (the
    global torch RNG), are dropped. ``logits`` ``(N, H, W)``; returns ``(N, H, W)`` bool. No
    gradient flows through the choice (the paper: "not differentiable").
    """
    n, h, w = logits.shape
    drop = torch.zeros(n, h * w, dtype=torch.bool, device=logits.device)
    if n == 0 or drop_count <= 0:
        return drop.view(n, h, w)
    order = logits.detach().reshape(n, h * w).argsort(dim=1, descending=True, stable=True)
    pool = order[:, :pool_count]
    pick = torch.rand(n, pool_count, device=logits.device).argsort(dim=1)[:, :drop_count]
    drop.scatter_(1, pool.gather(1, pick), True)
    return drop.view(n, h, w)


def random_cells(n: int, height: int, width: int, drop_count: int, device: torch.device) -> Tensor:
    """``drop_count`` cells per RoI uniformly at random (the global torch RNG): ``(n, H, W)`` bool."""
    drop = torch.zeros(n, height * width, dtype=torch.bool, device=device)
    if n and drop_count > 0:
        pick = torch.rand(n, height * width, device=device).argsort(dim=1)[:, :drop_count]
        drop.scatter_(1, pick, True)
    return drop.view(n, height, width)


def meets_drop_rule(p_before: Tensor, p_after: Tensor, threshold: float = 0.1) -> Tensor:
    """The code's rule for a useful occlusion: ``p_after[gt] + threshold < p_before[gt]`` ``(N,)`` bool."""
    return p_after + threshold < p_before


def pretrain_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Eq. 1: sigmoid cross-entropy over the ``d x d`` cells, mean over ``N * d * d`` (as the code)."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def joint_loss(logits: Tensor, drop: Tensor, valid: Tensor, normaliser: int) -> Tensor:
    """Eq. 1 on the sampled masks that met the rule: ``sum_{valid n, ij} BCE / normaliser``.

    The caller passes all sampled RoIs of the iteration times the cells as ``normaliser`` (the
    released code's normalisation) and applies the loss weight (0.0025).
    """
    bce = F.binary_cross_entropy_with_logits(logits.float(), drop.float(), reduction="none")
    return (bce.sum(dim=(1, 2)) * valid.float()).sum() / max(int(normaliser), 1)
