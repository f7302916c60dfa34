"""Drawing detections: one colour per class, class name and score on each box (the papers' Fig. 7)."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """Evenly spaced, saturated hues; ``colors[label - 1]`` for 1-based labels."""
    out = []
    for i in range(max(num_classes, 1)):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85, 0.95)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light backgrounds, white on dark ones (ITU-R BT.601 luma)."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def draw_detections(
    image: Image.Image | np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray | None,
    classes: Sequence[str],
    *,
    width: int | None = None,
    font_size: int | None = None,
) -> Image.Image:
    """``image`` with each box drawn in its class colour and captioned ``name score``.

    The caption sits on a band of the class colour just above the box (inside it when the box
    touches the top edge), in black or white, whichever reads better. Line width and font size
    scale with the image (``width``, ``font_size`` override them). The highest-scoring boxes are
    drawn last, so they stay on top.
    """
    canvas = (
        image.convert("RGB").copy()
        if isinstance(image, Image.Image)
        else Image.fromarray(np.asarray(image, dtype=np.uint8))
    )
    if len(boxes) == 0:
        return canvas
    short = min(canvas.size)
    line = width or max(1, round(short / 160))
    font = _font(font_size or max(10, round(short / 30)))
    colors = class_colors(len(classes))
    draw = ImageDraw.Draw(canvas)
    order = np.argsort(scores, kind="stable") if scores is not None else np.arange(len(boxes))
    for i in order.tolist():
        label = int(labels[i])
        name = classes[label - 1] if 0 < label <= len(classes) else str(label)
        caption = f"{name} {float(scores[i]):.2f}" if scores is not None else name
        colour = colors[(label - 1) % len(colors)]
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        w, h = right - left + 4, bottom - top + 4
        ty = y1 - h if y1 - h >= 0 else y1
        tx = min(max(x1, 0.0), max(canvas.width - w, 0))
        draw.rectangle((tx, ty, tx + w, ty + h), fill=colour)
        draw.text((tx + 2 - left, ty + 2 - top), caption, fill=_text_colour(colour), font=font)
    return canvas
