"""DropBlock (Ghiasi, Lin, Le 2018) on the RoI-pooled features: the structured-dropout baseline.

Contiguous ``block_size x block_size`` regions of every channel are dropped at random from the
features of every sampled RoI, and the rest rescaled by ``count / count_kept`` (the paper's
Alg. 1, ``torchvision.ops.drop_block2d``). The drop probability follows the paper's schedule:
it grows linearly from 0 to ``drop_prob`` over the run (``ramp=linear``). Unlike Inverted
Attention nothing guides where the blocks fall; unlike A-Fast-RCNN's ``random-dropout`` every
RoI, foreground or background, is affected and each channel gets its own blocks, as DropBlock
in a network's feature maps. Randomness comes from the global RNG, whose state the checkpoints
keep (an interrupted run resumes exactly).

Under mixed precision the mask and its scale are computed in float32 and the result cast back:
``drop_block2d`` sums the kept cells in the input's dtype, and in float16 that sum (0.9 x 512 RoIs
x 256 x 7 x 7 = 5.8 million) overflows 65504, so the scale ``count / (eps + inf)`` is 0 and every
feature would be zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import drop_block2d

from iadet.config.methods import (
    MethodParams,
    check_in_range,
    check_non_negative,
    check_one_of,
    register_preset,
)
from iadet.modeling.methods.base import RoIBatch, RoIMethod, RoIOutput

# ----------------------------------------------------------------------------------------------
# parameters and presets


@dataclass
class DropBlockParams(MethodParams):
    """``method.*`` for ``dropblock``: DropBlock (Ghiasi et al. 2018) on the RoI-pooled features."""

    drop_prob: float = 0.1
    """Target share of dropped units, ``1 - keep_prob`` (the paper: keep_prob 0.9)."""
    block_size: int = 0
    """Side of the dropped square blocks in cells; 0: ``d // 2`` made odd (3 on 7 x 7, 7 on 14 x 14, 3 on 6 x 6),
    the paper's ratio of block to map for ResNet's conv4 (7 on 14 x 14)."""
    ramp: str = "linear"
    """``linear``: ``drop_prob`` grows from 0 to its target over the run (the paper's scheduled DropBlock);
    ``constant``: the target from the first iteration."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_in_range(self, ("drop_prob",), 0.0, 0.99)
        check_non_negative(self, ("block_size",))
        check_one_of(self, "ramp", ("linear", "constant"))


register_preset(
    "dropblock",
    DropBlockParams,
    doc="DropBlock (Ghiasi et al. 2018) on the RoI-pooled features of every sampled RoI",
    family="feature space",
)


# ----------------------------------------------------------------------------------------------


def block_size_for(size: int, block_size: int = 0) -> int:
    """The block side for a ``size x size`` map: ``block_size`` if set, else ``size // 2`` made odd
    (7 x 7 -> 3, 14 x 14 -> 7, 6 x 6 -> 3); never more than the map."""
    if block_size:
        return min(block_size, size)
    side = max(size // 2, 1)
    return side if side % 2 else side - 1


class DropBlock(RoIMethod, params=DropBlockParams):
    """DropBlock on ``(N, C, H, W)`` RoI features, all ``N`` RoIs, every iteration."""

    def needs_max_iters(self) -> bool:
        return self.params.ramp == "linear"

    def current_drop_prob(self) -> float:
        """``drop_prob``, scaled by the fraction of the run done when ``ramp=linear`` (Sec. 3)."""
        if self.params.ramp == "constant":
            return self.params.drop_prob
        return self.params.drop_prob * min(self.iteration / max(self.max_iters or 1, 1), 1.0)

    def forward(self, features: Tensor, batch: RoIBatch) -> RoIOutput:
        p = self.current_drop_prob()
        if p <= 0.0 or features.numel() == 0:
            return RoIOutput(features, stats={"dropblock_p": p})
        size = block_size_for(min(features.shape[-2:]), self.params.block_size)
        return RoIOutput(drop_block(features, p, size), stats={"dropblock_p": p})


def drop_block(features: Tensor, p: float, block_size: int) -> Tensor:
    """``drop_block2d(features, p, block_size)`` on ``(N, C, H, W)`` features of any floating dtype.

    float32 and float64 go to torchvision as they are (bit for bit its result); float16 and
    bfloat16 are dropped and rescaled in float32, then cast back to their dtype, so the scale
    ``count / count_kept`` neither overflows (float16) nor loses its digits (bfloat16).
    """
    if features.dtype in (torch.float32, torch.float64):
        return drop_block2d(features, p, block_size, training=True)
    return drop_block2d(features.float(), p, block_size, training=True).to(features.dtype)
