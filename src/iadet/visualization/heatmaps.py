"""Heat-maps over RoI crops and grids of them, the building blocks of the IA paper's figures.

A heat-map is a 7 x 7 map upsampled bilinearly (``align_corners=False``, so each cell lands on
the centre of its RoIAlign bin) to the ``tile x tile`` crop of the RoI, coloured with matplotlib's
``jet`` (red high, blue low, as the paper) and alpha-blended over the crop's luminance (the RoI
column of each figure shows the crop in colour). Attention maps are
min-max normalised each on its own (they are Grad-CAM without ReLU, so they can be negative);
inverted-attention masks keep their absolute range [0, 1] (1 = kept, 0 = dropped).

Figures are composed with Pillow on a fixed layout, so their pixel size is known in advance
(:class:`Grid`): ``width = LABEL_WIDTH + columns * (tile + PAD) + PAD`` and ``height = TITLE_HEIGHT +
HEADER_HEIGHT + rows * (tile + PAD) + PAD``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

__all__ = [
    "HEADER_HEIGHT",
    "LABEL_WIDTH",
    "PAD",
    "TITLE_HEIGHT",
    "Grid",
    "heatmap_overlay",
    "roi_crop",
    "upsample",
]

PAD = 4
LABEL_WIDTH = 120
HEADER_HEIGHT = 20
TITLE_HEIGHT = 24
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def roi_crop(image: np.ndarray, box: Sequence[float], size: int) -> np.ndarray:
    """The box ``x1, y1, x2, y2`` (0-based pixels) of an ``H x W x 3`` uint8 image, resized to ``size x size``.

    Like RoIAlign the box is stretched to a square, so the 7 x 7 cells map onto a regular grid.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    x2, y2 = max(x2, x1 + 1.0), max(y2, y1 + 1.0)
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(pil.transform((size, size), Image.EXTENT, (x1, y1, x2, y2), Image.BILINEAR))


def upsample(values: Tensor, size: int) -> Tensor:
    """``(h, w)`` -> ``(size, size)``, bilinear, ``align_corners=False``."""
    return F.interpolate(values.float()[None, None], size=(size, size), mode="bilinear", align_corners=False)[
        0, 0
    ]


def heatmap_overlay(
    crop: np.ndarray,
    values: Tensor,
    *,
    alpha: float = 0.5,
    value_range: tuple[float, float] | None = None,
    colormap: str = "jet",
    grayscale: bool = True,
) -> np.ndarray:
    """``crop`` (``S x S x 3`` uint8) blended with the ``(h, w)`` map ``values`` upsampled and coloured.

    ``value_range`` ``(low, high)`` fixes the colour scale (e.g. ``(0, 1)`` for masks); ``None``
    normalises min-max (a constant map is drawn at the middle of the scale). With ``grayscale`` the
    crop's luminance is the base, so the colours read as the map's values whatever the object's colour.
    """
    from matplotlib import colormaps

    size = crop.shape[0]
    up = upsample(values, size)
    low, high = value_range if value_range is not None else (float(up.min()), float(up.max()))
    span = high - low
    unit = (up - low) / span if span > 0 else torch.full_like(up, 0.5)
    colours = colormaps[colormap](unit.clamp(0, 1).numpy())[..., :3] * 255.0
    base = crop.astype(np.float32)
    if grayscale:
        base = np.repeat(base @ np.array([[0.299], [0.587], [0.114]], np.float32), 3, axis=2)
    blended = (1.0 - alpha) * base + alpha * colours
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


class Grid:
    """A titled grid of ``tile x tile`` pictures with column headers and row labels.

    ``Grid(rows, columns, tile).size`` is the final ``(width, height)`` in pixels (see the module
    docstring); :meth:`put` pastes a tile with an optional caption, :attr:`image` is the result.
    """

    def __init__(
        self,
        rows: int,
        columns: int,
        tile: int,
        *,
        title: str = "",
        headers: Sequence[str] = (),
        row_labels: Sequence[str] = (),
    ) -> None:
        self.rows, self.columns, self.tile = rows, columns, tile
        width = LABEL_WIDTH + columns * (tile + PAD) + PAD
        height = TITLE_HEIGHT + HEADER_HEIGHT + rows * (tile + PAD) + PAD
        self.size = (width, height)
        self.image = Image.new("RGB", self.size, BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)
        self.font = _font(12)
        self.small = _font(10)
        if title:
            self._text((PAD, 4), title, _font(14), LABEL_WIDTH + columns * (tile + PAD))
        for c, header in enumerate(headers[:columns]):
            x, _ = self.origin(0, c)
            self._text((x, TITLE_HEIGHT + 3), header, self.font, tile)
        for r, label in enumerate(row_labels[:rows]):
            _, y = self.origin(r, 0)
            lines = textwrap.wrap(label, width=max(8, (LABEL_WIDTH - 2 * PAD) // 7)) or [""]
            for k, line in enumerate(lines[: max(1, tile // 14)]):
                self.draw.text((PAD, y + 2 + 14 * k), line, fill=TEXT, font=self.font)

    def origin(self, row: int, column: int) -> tuple[int, int]:
        """Top-left pixel of cell ``(row, column)``."""
        return (
            LABEL_WIDTH + PAD + column * (self.tile + PAD),
            TITLE_HEIGHT + HEADER_HEIGHT + PAD + row * (self.tile + PAD),
        )

    def _text(self, xy: tuple[int, int], text: str, font, max_width: int) -> None:
        while text and self.draw.textlength(text, font=font) > max_width:
            text = text[:-2] + "…" if len(text) > 2 else ""
        self.draw.text(xy, text, fill=TEXT, font=font)

    def put(self, row: int, column: int, picture: np.ndarray, caption: str = "") -> None:
        """Paste an ``tile x tile x 3`` uint8 picture; ``caption`` on a dark band at its bottom."""
        if picture.shape[:2] != (self.tile, self.tile):
            raise ValueError(f"tile must be {self.tile}x{self.tile}, got {picture.shape[:2]}")
        x, y = self.origin(row, column)
        self.image.paste(Image.fromarray(np.ascontiguousarray(picture)), (x, y))
        if caption:
            band = 13
            self.draw.rectangle(
                (x, y + self.tile - band, x + self.tile - 1, y + self.tile - 1), fill=(0, 0, 0)
            )
            text = caption
            while text and self.draw.textlength(text, font=self.small) > self.tile - 4:
                text = text[:-1]
            self.draw.text((x + 2, y + self.tile - band + 1), text, fill=(255, 255, 255), font=self.small)
