"""Cutout (DeVries and Taylor 2017): square holes cut anywhere in the image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from iadet.config.methods import check_in_range, check_non_negative, register_preset
from iadet.data.augmentations.base import (
    ImageAugmentationParams,
    ImageSpaceTransform,
    draw_int,
    draw_uniform,
    fill_values,
)
from iadet.errors import ConfigError

# ----------------------------------------------------------------------------------------------
# parameters and presets


@dataclass
class CutoutParams(ImageAugmentationParams):
    """``method.*`` for ``cutout`` (DeVries and Taylor 2017)."""

    size: float = 1 / 3
    """Side of the square cut out, as a fraction of the image's shorter side (the paper's STL-10 setting,
    32 of 96 pixels; CIFAR-10 used 16 of 32)."""
    size_px: int = 0
    """Side in pixels instead of ``size``; 0: use ``size``."""
    holes: int = 1
    """Squares per image (the paper: 1)."""
    probability: float = 1.0
    """Chance an image is cut (the paper: always)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_in_range(self, ("size", "probability"))
        check_non_negative(self, ("size_px",))
        if self.holes < 1:
            raise ConfigError(f"method.holes must be >= 1, got {self.holes}")


register_preset(
    "cutout", CutoutParams, doc="image-space baseline: Cutout (DeVries and Taylor 2017)", family="image space"
)


# ----------------------------------------------------------------------------------------------


class Cutout(ImageSpaceTransform, params=CutoutParams):
    """Cutout (DeVries and Taylor, *Improved Regularization of Convolutional Neural Networks with Cutout*, 2017).

    With chance ``probability``, ``holes`` squares of side ``size`` times the image's shorter side (or ``size_px``
    pixels) are cut, each centred uniformly over the image and clipped at its border. Defaults: the paper's
    (one square, always; its STL-10 side of a third).

    Input and output: ``image`` ``(C, H, W)`` (``tv_tensors.Image``, tensor or PIL; uint8 or float in [0, 1]),
    optionally with a ``target`` dict, returned unchanged (boxes are not read).

    Example::

        transforms = v2.Compose([v2.ToImage(), Cutout(size=0.25), v2.ToDtype(torch.float32, scale=True)])
        image, target = transforms(image, target)
    """

    def __init__(
        self,
        *,
        size: float = 1 / 3,
        size_px: int = 0,
        holes: int = 1,
        probability: float = 1.0,
        fill: str = "mean",
        generator: torch.Generator | None = None,
    ) -> None:
        values = dict(size=size, size_px=size_px, holes=holes, probability=probability, fill=fill)
        super().__init__(values, generator)

    # --- the sampling (what ``iadet train`` runs) ---------------------------------------------

    def erase(self, image: Tensor, boxes: Tensor, g: torch.Generator, progress: float = 0.0) -> Tensor:
        """``holes`` squares whose centres are uniform over the image, clipped at its border (so a square may
        be partly outside), with probability ``probability``."""
        c, height, width = image.shape
        if draw_uniform(g) >= self.params.probability:
            return image
        side = self.params.size_px or max(int(round(self.params.size * min(height, width))), 1)
        for _ in range(self.params.holes):
            cy, cx = draw_int(g, 0, height), draw_int(g, 0, width)
            top, bottom = max(cy - side // 2, 0), min(cy - side // 2 + side, height)
            left, right = max(cx - side // 2, 0), min(cx - side // 2 + side, width)
            if bottom > top and right > left:
                values = fill_values(self.params.fill, c, bottom - top, right - left, g)
                image = F.erase(image, top, left, bottom - top, right - left, values)
        return image
