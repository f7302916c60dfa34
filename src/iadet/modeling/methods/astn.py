"""The Adversarial Spatial Transformer Network (A-Fast-RCNN, Sec. 4.2.2); never released by the authors.

A spatial transformer (Jaderberg et al. 2015) restricted to rotations of the RoI-pooled
features, trained to make the detector fail:

* :class:`ASTN` — the localisation network, three fully connected layers (the first two may be
  initialised from the detector's ``fc6``/``fc7``, as the paper initialises them from the
  ImageNet network's), predicts one angle per block of channels (4 blocks), bounded to
  ``+-max_angle`` (10 degrees) by ``max_angle * tanh``. Its last layer starts at zero, so the
  untrained ASTN is the identity.
* :func:`rotate_channel_blocks` — the grid generator and sampler: each block of channels is
  rotated about the RoI's centre by its own angle (``affine_grid`` + bilinear ``grid_sample``,
  zeros outside), "rotating parts of the object in different directions".
* :func:`astn_objective` — the adversary's loss, ``L_A = -L_softmax(F_c(A(X)), C)`` (Sec. 3), or
  "classify the foreground objects as the background class" (Sec. 4.2.2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iadet.errors import ConfigError

ASTN_OBJECTIVES = ("max-loss", "background")
"""The ASTN's training objectives (``method.objective``): the detector's loss, or the background class."""


class ASTN(nn.Module):
    """Localisation network: ``(N, C, H, W) -> (N, blocks)`` angles in radians, in ``[-max, max]``.

    ``in_features`` is ``C * h * w`` of the features after ``pool``: maps larger than ``pool x pool``
    (a C4 head's 14 x 14) are average-pooled to it first, so the first layer stays the size of
    the paper's (``fc6`` on 7 x 7); 0 never pools.
    """

    def __init__(
        self, in_features: int, hidden: int = 1024, blocks: int = 4, max_angle: float = 10.0, pool: int = 7
    ) -> None:
        super().__init__()
        self.pool = pool
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, blocks)
        self.max_angle = math.radians(max_angle)
        nn.init.zeros_(self.fc3.weight)
        nn.init.zeros_(self.fc3.bias)

    def init_from_head(self, box_head: nn.Module) -> bool:
        """Copy ``box_head.fc6`` / ``fc7`` (torchvision's ``TwoMLPHead``) into ``fc1`` / ``fc2`` when
        the shapes fit; return whether they did. The copies are the ASTN's own parameters."""
        fc6, fc7 = getattr(box_head, "fc6", None), getattr(box_head, "fc7", None)
        if not (isinstance(fc6, nn.Linear) and isinstance(fc7, nn.Linear)):
            return False
        if fc6.weight.shape != self.fc1.weight.shape or fc7.weight.shape != self.fc2.weight.shape:
            return False
        with torch.no_grad():
            for ours, theirs in ((self.fc1, fc6), (self.fc2, fc7)):
                ours.weight.copy_(theirs.weight)
                ours.bias.copy_(theirs.bias)
        return True

    @staticmethod
    def input_size(height: int, width: int, pool: int = 7) -> tuple[int, int]:
        """The spatial size the localisation network reads for ``height x width`` features."""
        return (min(height, pool), min(width, pool)) if pool else (height, width)

    def forward(self, features: Tensor) -> Tensor:
        size = self.input_size(features.shape[2], features.shape[3], self.pool)
        if size != tuple(features.shape[2:]):
            features = F.adaptive_avg_pool2d(features, size)
        x = features.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.max_angle * torch.tanh(self.fc3(x))


def rotation_thetas(angles: Tensor, height: int, width: int) -> Tensor:
    """``affine_grid`` matrices ``(N, 2, 3)`` rotating a ``height x width`` map by ``angles`` ``(N,)``
    (radians) about its centre, in pixel units (so a non-square map is not sheared)."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    zero = torch.zeros_like(angles)
    return torch.stack(
        [
            torch.stack([cos, -sin * (height / width), zero], dim=1),
            torch.stack([sin * (width / height), cos, zero], dim=1),
        ],
        dim=1,
    )


def rotate_channel_blocks(features: Tensor, angles: Tensor) -> Tensor:
    """Rotate block ``b`` of the channels of each RoI by ``angles[:, b]``.

    Args:
        features: ``(N, C, H, W)``, any float dtype.
        angles: ``(N, B)`` radians; the channels are split into ``B`` contiguous blocks as
            ``torch.tensor_split`` does (sizes differ by at most one when ``B`` does not divide ``C``).

    Returns:
        ``(N, C, H, W)`` in ``features.dtype``, computed in float32 (bilinear, zeros outside,
        ``align_corners=False``); differentiable in both arguments. A zero angle is the identity.
    """
    n, c, h, w = features.shape
    if n == 0:
        return features
    x = features.float()
    blocks = torch.tensor_split(x, angles.shape[1], dim=1)
    out = []
    for b, block in enumerate(blocks):
        if block.shape[1] == 0:
            out.append(block)
            continue
        theta = rotation_thetas(angles[:, b].float(), h, w)
        grid = F.affine_grid(theta, list(block.shape), align_corners=False)
        out.append(F.grid_sample(block, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    return torch.cat(out, dim=1).to(features.dtype)


def astn_objective(logits: Tensor, labels: Tensor, objective: str = "background") -> Tensor:
    """The ASTN's loss on the detector's logits ``(N, K+1)`` of rotated foreground RoIs (mean over N).

    ``background`` (the default): ``CE(logits, 0)`` — push the foreground towards background (Sec. 4.2.2).
    ``max-loss``: ``-CE(logits, labels)`` — maximise the detector's classification loss (Sec. 3).
    """
    if objective == "max-loss":
        return -F.cross_entropy(logits.float(), labels)
    if objective == "background":
        return F.cross_entropy(logits.float(), torch.zeros_like(labels))
    raise ConfigError(f"method.objective: unknown value '{objective}' (valid: {', '.join(ASTN_OBJECTIVES)})")
