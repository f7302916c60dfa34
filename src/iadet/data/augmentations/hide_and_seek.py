"""Hide-and-Seek (Singh and Lee 2017): grid patches of the image hidden at random."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from iadet.config.methods import check_in_range, register_preset
from iadet.data.augmentations.base import ImageAugmentationParams, ImageSpaceTransform, draw_int, fill_values
from iadet.errors import ConfigError

# ----------------------------------------------------------------------------------------------
# parameters and presets


@dataclass
class HideAndSeekParams(ImageAugmentationParams):
    """``method.*`` for ``hide-and-seek`` (Singh and Lee 2017; defaults: the paper's and its code's)."""

    grid_sizes: list[int] = dataclasses.field(default_factory=lambda: [0, 16, 32, 44, 56])
    """Patch sides in pixels, one drawn per image; 0 = no hiding (the code's list)."""
    hide_prob: float = 0.5
    """Each patch is hidden with this probability (the paper: 0.5)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_in_range(self, ("hide_prob",))
        if not self.grid_sizes or any(s < 0 for s in self.grid_sizes):
            raise ConfigError(
                f"method.grid_sizes must be a non-empty list of sizes >= 0, got {self.grid_sizes}"
            )


register_preset(
    "hide-and-seek",
    HideAndSeekParams,
    doc="image-space baseline: Hide-and-Seek (Singh and Lee 2017), grid patches hidden with p=0.5",
    family="image space",
)


# ----------------------------------------------------------------------------------------------


class HideAndSeek(ImageSpaceTransform, params=HideAndSeekParams):
    """Hide-and-Seek (Singh and Lee, *Hide-and-Seek: Forcing a Network to be Meticulous for Weakly-supervised
    Object and Action Localization*, 2017).

    The image is cut into ``s x s`` pixel patches, ``s`` drawn per image from ``grid_sizes`` (0: nothing hidden),
    and each patch is hidden with chance ``hide_prob``, filled with the mean (Sec. 3.2). Defaults: the paper's and
    its code's; the sizes are pixels of the image this transform sees (the paper's crops are 224 x 224).

    Input and output: ``image`` ``(C, H, W)`` (``tv_tensors.Image``, tensor or PIL; uint8 or float in [0, 1]),
    optionally with a ``target`` dict, returned unchanged (boxes are not read).

    Example::

        transforms = v2.Compose([
            v2.ToImage(),
            HideAndSeek(grid_sizes=[32, 64]),
            v2.ToDtype(torch.float32, scale=True),
        ])
        image, target = transforms(image, target)
    """

    def __init__(
        self,
        *,
        grid_sizes: Sequence[int] = (0, 16, 32, 44, 56),
        hide_prob: float = 0.5,
        fill: str = "mean",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(dict(grid_sizes=list(grid_sizes), hide_prob=hide_prob, fill=fill), generator)

    # --- the sampling (what ``iadet train`` runs) ---------------------------------------------

    def hidden(self, height: int, width: int, g: torch.Generator) -> Tensor:
        """``(H, W)`` bool: the hidden pixels."""
        sizes = self.params.grid_sizes
        size = sizes[draw_int(g, 0, len(sizes))]
        if size == 0:
            return torch.zeros(height, width, dtype=torch.bool)
        rows, cols = math.ceil(height / size), math.ceil(width / size)
        cells = torch.rand(rows, cols, generator=g) < self.params.hide_prob
        return cells.repeat_interleave(size, 0).repeat_interleave(size, 1)[:height, :width]

    def erase(self, image: Tensor, boxes: Tensor, g: torch.Generator, progress: float = 0.0) -> Tensor:
        """A grid of ``s x s`` patches, ``s`` drawn from ``grid_sizes`` per image, each hidden with
        probability ``hide_prob`` (filled with the mean, Sec. 3.2)."""
        c, h, w = image.shape
        hidden = self.hidden(h, w, g)
        return torch.where(hidden, fill_values(self.params.fill, c, h, w, g), image)
