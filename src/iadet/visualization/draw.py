"""Drawing detections: one colour per class, class name and score on each box (the papers' Fig. 7)."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.utils import draw_bounding_boxes


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """Evenly spaced, saturated hues; ``colors[label - 1]`` for 1-based labels."""
    out = []
    for i in range(max(num_classes, 1)):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85, 0.95)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def draw_detections(
    image: Image.Image | np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray | None,
    classes: Sequence[str],
    *,
    width: int | None = None,
) -> Image.Image:
    """``image`` with each box drawn in its class colour and captioned ``name score``."""
    array = np.array(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
    tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    if len(boxes) == 0:
        return Image.fromarray(array)
    colors = class_colors(len(classes))
    captions = []
    for i, label in enumerate(labels.tolist()):
        name = classes[label - 1] if 0 < label <= len(classes) else str(label)
        captions.append(f"{name} {scores[i]:.2f}" if scores is not None else name)
    line = width or max(1, round(min(array.shape[:2]) / 160))
    drawn = draw_bounding_boxes(
        tensor,
        torch.as_tensor(boxes, dtype=torch.float32),
        labels=captions,
        colors=[colors[(label - 1) % len(colors)] for label in labels.tolist()],
        width=line,
        fill=False,
    )
    return Image.fromarray(drawn.permute(1, 2, 0).numpy())
