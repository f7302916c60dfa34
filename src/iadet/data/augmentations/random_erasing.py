"""Random Erasing (Zhong, Zheng, Kang, Li, Yang, *Random Erasing Data Augmentation*, 2017) for detection:
image-aware, object-aware or both (Sec. 4.3)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from iadet.config.methods import check_in_range, check_one_of, register_preset
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

RANDOM_ERASING_MODES = ("image", "object", "image+object")


@dataclass
class RandomErasingParams(ImageAugmentationParams):
    """``method.*`` for ``random-erasing`` (Zhong et al. 2017, Alg. 1 and Sec. 4.3; defaults: the paper's)."""

    mode: str = "image+object"
    """``image`` (IRE: one rectangle anywhere in the image), ``object`` (ORE: one inside each ground-truth
    box, each independently) or ``image+object`` (I+ORE, the paper's best on VOC07: 74.8 -> 76.2)."""
    probability: float = 0.5
    """``p``: chance that the image (and, independently, each object) is erased."""
    area_min: float = 0.02
    """``s_l``: smallest erased area, as a fraction of the image's (or the box's) area."""
    area_max: float = 0.4
    """``s_h``: largest erased area, as a fraction."""
    aspect_min: float = 0.3
    """``r_1``: the erased rectangle's aspect ratio is uniform in ``[r_1, 1/r_1]``."""
    fill: str = "random"
    """``random`` (Alg. 1: uniform random values), ``mean`` (its classification code's choice) or ``zero``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_one_of(self, "mode", RANDOM_ERASING_MODES)
        check_in_range(self, ("probability", "area_min", "area_max"))
        if not 0.0 < self.aspect_min <= 1.0:
            raise ConfigError(f"method.aspect_min must be in (0, 1], got {self.aspect_min}")
        if self.area_min > self.area_max:
            raise ConfigError(
                f"method.area_min ({self.area_min}) must not exceed method.area_max ({self.area_max})"
            )


register_preset(
    "random-erasing",
    RandomErasingParams,
    doc="image-space baseline: Random Erasing (Zhong et al. 2017), image- and object-aware",
    family="image space",
)


# ----------------------------------------------------------------------------------------------

MAX_TRIES = 100
"""Random Erasing: rectangles drawn before giving up on one region (Zhong et al.'s code: 100)."""


def erasing_rectangle(
    g: torch.Generator, height: int, width: int, params: RandomErasingParams
) -> tuple[int, int, int, int] | None:
    """Zhong et al.'s Algorithm 1: ``(top, left, h, w)`` of a rectangle inside a ``height x width`` region.

    Area ``S_e`` uniform in ``[s_l, s_h] * S``, aspect ``r_e`` uniform in ``[r_1, 1 / r_1]``,
    ``H_e = sqrt(S_e r_e)``, ``W_e = sqrt(S_e / r_e)``, top-left uniform; redrawn until it fits
    (at most :data:`MAX_TRIES` times, then ``None``).
    """
    area = height * width
    for _ in range(MAX_TRIES):
        target = draw_uniform(g, params.area_min, params.area_max) * area
        aspect = draw_uniform(g, params.aspect_min, 1.0 / params.aspect_min)
        h = int(round(math.sqrt(target * aspect)))
        w = int(round(math.sqrt(target / aspect)))
        if 0 < h < height and 0 < w < width:
            return draw_int(g, 0, height - h + 1), draw_int(g, 0, width - w + 1), h, w
    return None


class RandomErasing(ImageSpaceTransform, params=RandomErasingParams):
    """Random Erasing for detection (Zhong, Zheng, Kang, Li, Yang, *Random Erasing Data Augmentation*, 2017).

    Algorithm 1 draws a rectangle of area ``U[area_min, area_max]`` times the region's and aspect
    ``U[aspect_min, 1/aspect_min]``, redrawn until it fits, and fills it (``fill``); Sec. 4.3's three detection
    schemes are ``mode``: ``"image"`` (IRE, one rectangle of the whole image with chance ``probability``),
    ``"object"`` (ORE, one inside each ground-truth box, each with chance ``probability`` independently) and
    ``"image+object"`` (I+ORE, both, the image first; the paper's best on VOC07). Defaults: the paper's.

    Input and output: ``image`` ``(C, H, W)`` (``tv_tensors.Image``, tensor or PIL; uint8 or float in [0, 1]),
    optionally with a ``target`` dict whose ``"boxes"`` (``tv_tensors.BoundingBoxes``, any axis-aligned format)
    are where ORE erases; the boxes, masks and labels come back unchanged. Without boxes only IRE acts.

    Example::

        transforms = v2.Compose([
            v2.ToImage(),
            v2.RandomHorizontalFlip(),
            RandomErasing(mode="object", probability=0.5),
            v2.ToDtype(torch.float32, scale=True),
        ])
        image, target = transforms(image, {"boxes": boxes, "labels": labels})
    """

    _uses_boxes = True

    def __init__(
        self,
        *,
        mode: str = "image+object",
        probability: float = 0.5,
        area_min: float = 0.02,
        area_max: float = 0.4,
        aspect_min: float = 0.3,
        fill: str = "random",
        generator: torch.Generator | None = None,
    ) -> None:
        values = dict(
            mode=mode,
            probability=probability,
            area_min=area_min,
            area_max=area_max,
            aspect_min=aspect_min,
            fill=fill,
        )
        super().__init__(values, generator)

    def _boxes_xyxy(self, sample: Any, flat: list[Any], height: int, width: int) -> Tensor | None:
        if self.params.mode == "image":
            return None
        return super()._boxes_xyxy(sample, flat, height, width)

    # --- the sampling (what ``iadet train`` runs) ---------------------------------------------

    def _erase_region(self, image: Tensor, g: torch.Generator, top: int, left: int, h: int, w: int) -> Tensor:
        if draw_uniform(g) >= self.params.probability or h < 2 or w < 2:
            return image
        rect = erasing_rectangle(g, h, w, self.params)
        if rect is None:
            return image
        i, j, eh, ew = rect
        values = fill_values(self.params.fill, image.shape[0], eh, ew, g)
        return F.erase(image, top + i, left + j, eh, ew, values)

    def erase(self, image: Tensor, boxes: Tensor, g: torch.Generator, progress: float = 0.0) -> Tensor:
        """``image``: with probability ``p`` one rectangle of the whole image (Alg. 1). ``object``: for each
        ground-truth box independently, with probability ``p`` one rectangle inside it (Alg. 1 on the box).
        ``image+object``: both, image first. Boxes are unchanged."""
        _, height, width = image.shape
        if self.params.mode in ("image", "image+object"):
            image = self._erase_region(image, g, 0, 0, height, width)
        if self.params.mode in ("object", "image+object"):
            for x1, y1, x2, y2 in boxes.tolist():
                left, top = max(int(math.floor(x1)), 0), max(int(math.floor(y1)), 0)
                right, bottom = min(int(math.ceil(x2)), width), min(int(math.ceil(y2)), height)
                image = self._erase_region(image, g, top, left, bottom - top, right - left)
        return image
