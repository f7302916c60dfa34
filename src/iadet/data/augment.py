"""Image-space occlusion baselines: Random Erasing, Hide-and-Seek, Cutout and GridMask.

The simple augmentations a practitioner tries before a feature-space method. They run in the
training data pipeline only (evaluation and inference never see them) and leave boxes, masks and
labels as they are — an object erased whole keeps its box, as in the papers. Each draws its
randomness from a ``torch.Generator`` seeded per training sample by
:func:`iadet.data.sampler.augmentation_seed` (the run's seed, the epoch and the image), so what is
erased is a function of the seed and the position in the data order: an interrupted run resumes to
the same weights. Schedules that ramp over training (GridMask's probability) read ``progress``,
the run's fraction done at the sample's iteration.

Every augmentation takes ``image`` ``(3, H, W)`` float in [0, 1], ``boxes`` ``(K, 4)`` float
``x1, y1, x2, y2`` in pixels, a generator and ``progress`` in [0, 1]; it returns a new image.
The pixels are written with ``torchvision.transforms.v2.functional.erase``; the sampling is
ours, because torchvision's ``RandomErasing`` samples the aspect ratio log-uniformly, gives up
after 10 tries and fills with N(0, 1) noise meant for normalised tensors, while Zhong et al.'s
Algorithm 1 draws it uniformly, tries until a rectangle fits and fills with uniform random
values; and none of the libraries erase inside each ground-truth box (object-aware erasing).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from iadet.config.methods import (
    CutoutParams,
    GridMaskParams,
    HideAndSeekParams,
    ImageAugmentationParams,
    MethodParams,
    RandomErasingParams,
)

IMAGE_MEAN = (0.485, 0.456, 0.406)
"""The detector's input mean (torchvision's ``GeneralizedRCNNTransform`` default, ImageNet's):
``fill=mean`` pixels are 0 once normalised, as the papers' mean-filled patches."""

MAX_TRIES = 100
"""Random Erasing: rectangles drawn before giving up on one region (Zhong et al.'s code: 100)."""

ImageAugmentation = Callable[[Tensor, Tensor, torch.Generator, float], Tensor]


def _uniform(g: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=g, dtype=torch.float64))


def _randint(g: torch.Generator, low: int, high: int) -> int:
    """Uniform in ``[low, high)``."""
    return int(torch.randint(low, high, (), generator=g))


def fill_values(fill: str, channels: int, h: int, w: int, g: torch.Generator) -> Tensor:
    """``(C, h, w)`` replacement pixels: the detector's mean, uniform random, or zero."""
    if fill == "random":
        return torch.rand(channels, h, w, generator=g)
    value = IMAGE_MEAN if fill == "mean" else (0.0,) * 3
    return torch.tensor(value[:channels]).view(-1, 1, 1).expand(channels, h, w)


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
        target = _uniform(g, params.area_min, params.area_max) * area
        aspect = _uniform(g, params.aspect_min, 1.0 / params.aspect_min)
        h = int(round(math.sqrt(target * aspect)))
        w = int(round(math.sqrt(target / aspect)))
        if 0 < h < height and 0 < w < width:
            return _randint(g, 0, height - h + 1), _randint(g, 0, width - w + 1), h, w
    return None


class RandomErasing:
    """Random Erasing for detection (Zhong et al. 2017, Sec. 4.3): image-aware, object-aware or both.

    ``image``: with probability ``p`` one rectangle of the whole image (Alg. 1). ``object``: for each
    ground-truth box independently, with probability ``p`` one rectangle inside it (Alg. 1 on the box).
    ``image+object``: both, image first. Boxes are unchanged.
    """

    def __init__(self, params: RandomErasingParams) -> None:
        self.params = params

    def _erase_region(self, image: Tensor, g: torch.Generator, top: int, left: int, h: int, w: int) -> Tensor:
        if _uniform(g) >= self.params.probability or h < 2 or w < 2:
            return image
        rect = erasing_rectangle(g, h, w, self.params)
        if rect is None:
            return image
        i, j, eh, ew = rect
        values = fill_values(self.params.fill, image.shape[0], eh, ew, g)
        return F.erase(image, top + i, left + j, eh, ew, values)

    def __call__(self, image: Tensor, boxes: Tensor, g: torch.Generator, progress: float = 0.0) -> Tensor:
        _, height, width = image.shape
        if self.params.mode in ("image", "image+object"):
            image = self._erase_region(image, g, 0, 0, height, width)
        if self.params.mode in ("object", "image+object"):
            for x1, y1, x2, y2 in boxes.tolist():
                left, top = max(int(math.floor(x1)), 0), max(int(math.floor(y1)), 0)
                right, bottom = min(int(math.ceil(x2)), width), min(int(math.ceil(y2)), height)
                image = self._erase_region(image, g, top, left, bottom - top, right - left)
        return image


class HideAndSeek:
    """Hide-and-Seek (Singh and Lee 2017): a grid of ``s x s`` patches, ``s`` drawn from ``grid_sizes``
    per image, each hidden with probability ``hide_prob`` (filled with the mean, Sec. 3.2)."""

    def __init__(self, params: HideAndSeekParams) -> None:
        self.params = params

    def hidden(self, height: int, width: int, g: torch.Generator) -> Tensor:
        """``(H, W)`` bool: the hidden pixels."""
        sizes = self.params.grid_sizes
        size = sizes[_randint(g, 0, len(sizes))]
        if size == 0:
            return torch.zeros(height, width, dtype=torch.bool)
        rows, cols = math.ceil(height / size), math.ceil(width / size)
        cells = torch.rand(rows, cols, generator=g) < self.params.hide_prob
        return cells.repeat_interleave(size, 0).repeat_interleave(size, 1)[:height, :width]

    def __call__(self, image: Tensor, boxes: Tensor, g: torch.Generator, progress: float = 0.0) -> Tensor:
        c, h, w = image.shape
        hidden = self.hidden(h, w, g)
        return torch.where(hidden, fill_values(self.params.fill, c, h, w, g), image)


class Cutout:
    """Cutout (DeVries and Taylor 2017): ``holes`` squares whose centres are uniform over the image,
    clipped at its border (so a square may be partly outside), with probability ``probability``."""

    def __init__(self, params: CutoutParams) -> None:
        self.params = params

    def __call__(self, image: Tensor, boxes: Tensor, g: torch.Generator, progress: float = 0.0) -> Tensor:
        c, height, width = image.shape
        if _uniform(g) >= self.params.probability:
            return image
        side = self.params.size_px or max(int(round(self.params.size * min(height, width))), 1)
        for _ in range(self.params.holes):
            cy, cx = _randint(g, 0, height), _randint(g, 0, width)
            top, bottom = max(cy - side // 2, 0), min(cy - side // 2 + side, height)
            left, right = max(cx - side // 2, 0), min(cx - side // 2 + side, width)
            if bottom > top and right > left:
                values = fill_values(self.params.fill, c, bottom - top, right - left, g)
                image = F.erase(image, top, left, bottom - top, right - left, values)
        return image


class GridMask:
    """GridMask (Chen et al. 2020), as its detection code: a grid of unit ``d`` uniform in
    ``[d_min, d_max)``, random offsets in ``[0, d)``, stripes ``ceil(r d)`` wide kept and the squares
    between them dropped, with a probability that ramps linearly to ``probability`` over the run."""

    def __init__(self, params: GridMaskParams) -> None:
        self.params = params

    def dropped(self, height: int, width: int, g: torch.Generator) -> Tensor:
        """``(H, W)`` bool: the dropped pixels."""
        d_max = self.params.d_max or min(height, width)
        d = _randint(g, self.params.d_min, max(d_max, self.params.d_min + 1))
        keep = min(math.ceil(d * self.params.ratio), d)
        angle = _uniform(g, 0.0, self.params.rotate) if self.params.rotate else 0.0
        # a grid over a square that covers the image under any rotation, then rotated and centre-cropped
        side = math.ceil(math.hypot(height, width)) if angle else max(height, width)
        offset_y, offset_x = _randint(g, 0, d), _randint(g, 0, d)
        rows = (torch.arange(side) + d - offset_y) % d >= keep
        cols = (torch.arange(side) + d - offset_x) % d >= keep
        grid = rows[:, None] & cols[None, :]
        if angle:
            grid = F.rotate(grid[None].to(torch.uint8), angle)[0].bool()
        top, left = (side - height) // 2, (side - width) // 2
        return grid[top : top + height, left : left + width]

    def __call__(self, image: Tensor, boxes: Tensor, g: torch.Generator, progress: float = 0.0) -> Tensor:
        p = self.params.probability * (min(max(progress, 0.0), 1.0) if self.params.ramp == "linear" else 1.0)
        if _uniform(g) >= p:
            return image
        c, h, w = image.shape
        return torch.where(self.dropped(h, w, g), fill_values(self.params.fill, c, h, w, g), image)


_AUGMENTATIONS: dict[type[ImageAugmentationParams], Callable[..., ImageAugmentation]] = {
    RandomErasingParams: RandomErasing,
    HideAndSeekParams: HideAndSeek,
    CutoutParams: Cutout,
    GridMaskParams: GridMask,
}


def build_image_augmentation(params: MethodParams) -> ImageAugmentation | None:
    """The training-time image augmentation of a method, or ``None`` for methods on RoI features."""
    if not isinstance(params, ImageAugmentationParams):
        return None
    return _AUGMENTATIONS[type(params)](params)
