"""The IA paper's figures from trained detectors: Fig. 1/2 (attention), Fig. 5 (evolution), Fig. 6 (strategies).

Each function returns a Pillow image laid out on a :class:`~iadet.visualization.heatmaps.Grid`
(its size is known from the numbers of rows and columns and the tile size):

* :func:`attention_figure` — per object, the attention of the RoI features of the top
  ``channels`` channels most affected by IA and the overall ``M`` (Eq. 1); for the first
  detector also the same maps after inversion (Eq. 4, the "during IA training" row of Fig. 1);
  further detectors (e.g. baseline, then IA) add their attention rows on the same boxes.
* :func:`strategies_figure` — per object, ``M`` and the spatial inverted attention of the four
  strategies (random, overturn, hard, soft; Sec. 4.3.1).
* :func:`evolution_figure` — per recorded RoI, ``M`` at the recorded training iterations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from iadet.modeling.methods.probes import gt_probabilities
from iadet.visualization.attention import channel_attention, roi_attention, top_affected_channels
from iadet.visualization.heatmaps import Grid, heatmap_overlay, roi_crop

__all__ = ["STRATEGY_ORDER", "attention_figure", "evolution_figure", "strategies_figure"]

STRATEGY_ORDER = ("random", "overturn", "hard", "soft")
"""Fig. 6's order, (a) to (d)."""


def _class_name(classes: Sequence[str], label: int) -> str:
    return classes[label - 1] if 0 < label <= len(classes) else "background" if label == 0 else str(label)


def _tensor(image: np.ndarray, device: torch.device | str) -> Tensor:
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255.0).to(device)


def attention_figure(
    image: np.ndarray,
    boxes: Tensor,
    labels: Tensor,
    models: Sequence[tuple[str, nn.Module]],
    classes: Sequence[str],
    *,
    scores: Tensor | None = None,
    channels: int = 4,
    tile: int = 112,
    mask_options: Mapping[str, Any] | None = None,
    title: str = "",
) -> Image.Image:
    """Fig. 1/2 for the objects ``boxes`` ``(N, 4)`` / ``labels`` ``(N,)`` of ``image`` (``H x W x 3`` uint8).

    Args:
        models: ``(name, detector)`` pairs; the first also gets the inverted-attention row.
        scores: the detection scores, shown on the first crop of each object.
        channels: how many channels (the most affected by IA, :func:`top_affected_channels`).
        mask_options: :func:`inverted_attention_mask` options (default: the paper's soft
            spatial+channel mask, 1/3 of the cells, 80% of the channels).

    Layout: ``N * (len(models) + 1)`` rows of ``channels + 2`` tiles (RoI, channels, overall).
    """
    mask_options = dict(mask_options or {})
    crops = [roi_crop(image, box.tolist(), tile) for box in boxes]
    # per detector, its rows for every object: (variant, per-channel maps, overall map, p(class), top channels)
    variants: list[tuple[str, list[tuple[str, Tensor, Tensor, Tensor, Tensor]]]] = []
    for k, (name, model) in enumerate(models):
        device = next(model.parameters()).device
        att = roi_attention(model, _tensor(image, device), boxes, labels)
        mask = att.inverted(**mask_options)
        top = top_affected_channels(att.features, att.weights, mask, channels)
        rows_of_model = [
            ("attention", channel_attention(att.features, att.weights), att.attention, att.probability, top)
        ]
        if k == 0:
            inverted = channel_attention(att.features, att.weights, mask)
            masked = (att.features * mask).to(device)
            probability = gt_probabilities(masked, labels.to(device), model.roi_heads.score_fn).cpu()
            rows_of_model.append(("inverted (IA)", inverted, inverted.sum(1), probability, top))
        variants.append((name, rows_of_model))
    row_labels: list[str] = []
    rows: list[list[tuple[np.ndarray, str]]] = []
    for n in range(len(boxes)):
        cls = _class_name(classes, int(labels[n]))
        for k, (name, rows_of_model) in enumerate(variants):
            for variant, per_channel, overall, probability, top in rows_of_model:
                if k == 0 and variant == "attention" and scores is not None:
                    caption = f"{cls} {float(scores[n]):.2f}"
                else:
                    caption = f"p({cls}) {float(probability[n]):.2f}"
                row = [(crops[n], caption)]
                row += [
                    (heatmap_overlay(crops[n], per_channel[n, c]), f"channel {c}") for c in top[n].tolist()
                ]
                row.append((heatmap_overlay(crops[n], overall[n]), "overall"))
                rows.append(row)
                row_labels.append(f"object {n + 1} {name}: {variant}")
    grid = Grid(
        len(rows),
        channels + 2,
        tile,
        title=title
        or f"attention of the RoI features (Eq. 1): top {channels} channels affected by IA, overall",
        headers=["RoI", *(f"IA channel {k + 1}" for k in range(channels)), "overall"],
        row_labels=row_labels,
    )
    for r, row in enumerate(rows):
        for c, (picture, caption) in enumerate(row):
            grid.put(r, c, picture, caption)
    return grid.image


def strategies_figure(
    image: np.ndarray,
    boxes: Tensor,
    labels: Tensor,
    model: nn.Module,
    classes: Sequence[str],
    *,
    tile: int = 112,
    spatial_ratio: float = 1 / 3,
    seed: int = 0,
    title: str = "",
) -> Image.Image:
    """Fig. 6: per object, the RoI, ``M`` and the spatial inverted attention of each strategy.

    The masks are drawn on the absolute scale [0, 1] (red kept, blue dropped); ``random`` draws
    with a generator seeded by ``seed``. Layout: ``N`` rows of 6 tiles.
    """
    device = next(model.parameters()).device
    att = roi_attention(model, _tensor(image, device), boxes, labels)
    generator = torch.Generator().manual_seed(seed)
    masks = {
        strategy: att.inverted(
            strategy=strategy, orientation="spatial", spatial_ratio=spatial_ratio, generator=generator
        )[:, 0]
        for strategy in STRATEGY_ORDER
    }
    letters = "abcd"
    grid = Grid(
        len(boxes),
        2 + len(STRATEGY_ORDER),
        tile,
        title=title
        or f"inversion strategies on the spatial attention ({100 * spatial_ratio:.0f}% of the cells)",
        headers=["RoI", "attention M", *(f"({letters[k]}) {s}" for k, s in enumerate(STRATEGY_ORDER))],
        row_labels=[f"object {n + 1}: {_class_name(classes, int(labels[n]))}" for n in range(len(boxes))],
    )
    for n, box in enumerate(boxes):
        crop = roi_crop(image, box.tolist(), tile)
        grid.put(n, 0, crop, f"p {float(att.probability[n]):.2f}")
        grid.put(n, 1, heatmap_overlay(crop, att.attention[n]), "Eq. 1")
        for k, strategy in enumerate(STRATEGY_ORDER):
            mask = masks[strategy][n]
            grid.put(
                n,
                2 + k,
                heatmap_overlay(crop, mask, value_range=(0.0, 1.0)),
                f"kept {100 * float(mask.mean()):.0f}%",
            )
    return grid.image


def _pick(count: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over ``range(count)``, first and last included."""
    if count <= wanted:
        return list(range(count))
    return sorted({round(k * (count - 1) / (wanted - 1)) for k in range(wanted)})


def evolution_figure(
    state: Mapping[str, Any],
    classes: Sequence[str],
    *,
    tile: int = 96,
    max_columns: int = 8,
    title: str = "",
) -> Image.Image:
    """Fig. 5 from an :class:`~iadet.visualization.evolution.AttentionRecorder` state.

    One row per recorded RoI: its crop, then ``M`` at up to ``max_columns`` recorded iterations
    (spread evenly, first and last included), each captioned with the ground-truth probability.
    Layout: ``K`` rows of ``1 + min(snapshots, max_columns)`` tiles.
    """
    snapshots = [state["snapshots"][i] for i in _pick(len(state["snapshots"]), max(2, max_columns))]
    images = [im.permute(1, 2, 0).numpy() for im in state["images"]]
    boxes, labels, index = state["boxes"], state["labels"], state["image_index"]
    grid = Grid(
        len(boxes),
        1 + len(snapshots),
        tile,
        title=title or "attention M (Eq. 1) of fixed RoIs during training",
        headers=["RoI", *(f"iter {int(s['iteration'])}" for s in snapshots)],
        row_labels=[f"RoI {k + 1}: {_class_name(classes, int(labels[k]))}" for k in range(len(boxes))],
    )
    for k in range(len(boxes)):
        crop = roi_crop(images[int(index[k])], boxes[k].tolist(), tile)
        grid.put(k, 0, crop)
        for c, snapshot in enumerate(snapshots):
            grid.put(
                k,
                1 + c,
                heatmap_overlay(crop, snapshot["attention"][k]),
                f"p {float(snapshot['probability'][k]):.2f}",
            )
    return grid.image
