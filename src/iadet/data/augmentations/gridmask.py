"""GridMask (Chen, Liu, Wang, Jia 2020): the squares between the stripes of a random grid dropped."""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass
class GridMaskParams(ImageAugmentationParams):
    """``method.*`` for ``gridmask`` (Chen et al. 2020; defaults: its detection code)."""

    ratio: float = 0.5
    """``r``: the kept stripes are ``ceil(r * d)`` wide, so squares of side ``d - ceil(r * d)`` are dropped."""
    d_min: int = 2
    """Smallest grid unit ``d`` in pixels (the code: 2)."""
    d_max: int = 0
    """Largest ``d`` (exclusive); 0: the image's shorter side (the code: ``min(h, w)``)."""
    probability: float = 0.7
    """Chance an image is masked, reached at the end of ``ramp`` (the code: 0.7)."""
    ramp: str = "linear"
    """``linear``: the probability grows from 0 to ``probability`` over the run (the code); ``constant``."""
    rotate: float = 0.0
    """The grid is rotated by an angle uniform in ``[0, rotate)`` degrees (the code's detection setting: none)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_in_range(self, ("ratio", "probability"))
        check_one_of(self, "ramp", ("linear", "constant"))
        if self.d_min < 1:
            raise ConfigError(f"method.d_min must be >= 1, got {self.d_min}")
        if self.d_max and self.d_max <= self.d_min:
            raise ConfigError(f"method.d_max ({self.d_max}) must exceed method.d_min ({self.d_min}), or be 0")
        check_in_range(self, ("rotate",), 0.0, 360.0)


register_preset(
    "gridmask", GridMaskParams, doc="image-space baseline: GridMask (Chen et al. 2020)", family="image space"
)


# ----------------------------------------------------------------------------------------------


class GridMask(ImageSpaceTransform, params=GridMaskParams):
    """GridMask (Chen, Liu, Wang, Jia, *GridMask Data Augmentation*, 2020), as its detection code.

    A grid of unit ``d`` uniform in ``[d_min, d_max)`` (``d_max=0``: the image's shorter side) with random offsets;
    stripes ``ceil(ratio * d)`` wide are kept and the squares between them dropped (``fill``), optionally rotated
    by an angle uniform in ``[0, rotate)`` degrees; an image is masked with chance ``probability``.

    The authors' code ramps that chance linearly from 0 over training. Here the default ``ramp="constant"``
    masks at ``probability`` from the first call; with ``ramp="linear"`` call :meth:`set_progress` with the
    fraction of training done (each epoch or step) before using the transform, which raises otherwise. (In
    DataLoader workers the transform is a copy: a progress set in the main process reaches workers that are
    started afterwards, i.e. each epoch without ``persistent_workers``, not running ones.)

    Input and output: ``image`` ``(C, H, W)`` (``tv_tensors.Image``, tensor or PIL; uint8 or float in [0, 1]),
    optionally with a ``target`` dict, returned unchanged (boxes are not read).

    Example::

        gridmask = GridMask(probability=0.7, ramp="linear")
        transforms = v2.Compose([v2.ToImage(), gridmask, v2.ToDtype(torch.float32, scale=True)])
        for epoch in range(epochs):
            gridmask.set_progress(epoch / epochs)
            ...
    """

    _fraction: float | None = None
    """The fraction of training done, from :meth:`set_progress` (``None``: not set)."""

    def __init__(
        self,
        *,
        ratio: float = 0.5,
        d_min: int = 2,
        d_max: int = 0,
        probability: float = 0.7,
        ramp: str = "constant",
        rotate: float = 0.0,
        fill: str = "mean",
        generator: torch.Generator | None = None,
    ) -> None:
        values = dict(
            ratio=ratio, d_min=d_min, d_max=d_max, probability=probability, ramp=ramp, rotate=rotate
        )
        super().__init__({**values, "fill": fill}, generator)

    def set_progress(self, fraction: float) -> None:
        """Set the fraction of training done, in [0, 1]: the chance is ``fraction * probability`` (``ramp="linear"``).

        With ``ramp="constant"`` it has no effect, so a training loop may call it whatever the ramp.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"GridMask.set_progress: fraction must be a number in [0, 1], got {fraction!r}")
        self._fraction = float(fraction)

    def _progress(self) -> float:
        if self.params.ramp != "linear":
            return 1.0
        if self._fraction is None:
            raise RuntimeError(
                "GridMask(ramp='linear') was called before set_progress(fraction): "
                "call it with the fraction of training done (0 to 1), or use ramp='constant'"
            )
        return self._fraction

    # --- the sampling (what ``iadet train`` runs, with the run's ``progress``) -----------------

    def dropped(self, height: int, width: int, g: torch.Generator) -> Tensor:
        """``(H, W)`` bool: the dropped pixels."""
        d_max = self.params.d_max or min(height, width)
        d = draw_int(g, self.params.d_min, max(d_max, self.params.d_min + 1))
        keep = min(math.ceil(d * self.params.ratio), d)
        angle = draw_uniform(g, 0.0, self.params.rotate) if self.params.rotate else 0.0
        # a grid over a square that covers the image under any rotation, then rotated and centre-cropped
        side = math.ceil(math.hypot(height, width)) if angle else max(height, width)
        offset_y, offset_x = draw_int(g, 0, d), draw_int(g, 0, d)
        rows = (torch.arange(side) + d - offset_y) % d >= keep
        cols = (torch.arange(side) + d - offset_x) % d >= keep
        grid = rows[:, None] & cols[None, :]
        if angle:
            grid = F.rotate(grid[None].to(torch.uint8), angle)[0].bool()
        top, left = (side - height) // 2, (side - width) // 2
        return grid[top : top + height, left : left + width]

    def erase(self, image: Tensor, boxes: Tensor, g: torch.Generator, progress: float = 0.0) -> Tensor:
        """A grid of unit ``d`` uniform in ``[d_min, d_max)``, random offsets in ``[0, d)``, stripes
        ``ceil(r d)`` wide kept and the squares between them dropped, with a probability that ramps linearly to
        ``probability`` over the run (``progress``)."""
        p = self.params.probability * (min(max(progress, 0.0), 1.0) if self.params.ramp == "linear" else 1.0)
        if draw_uniform(g) >= p:
            return image
        c, h, w = image.shape
        return torch.where(self.dropped(h, w, g), fill_values(self.params.fill, c, h, w, g), image)
