"""Missing evidence: blanking parts of the objects (the ``test_erased`` split and part-reliance analysis).

``test_occluded`` pastes textured occluders over objects — *misleading* evidence. Inverted Attention
trains against *missing* evidence (zeroed features), so ``test_erased`` removes evidence instead:
the same scenes as ``test`` with one or two of each object's four parts blanked, filled with the
body's colour (the part is gone, the object's silhouette stays) or with what was behind the object
(a hole). Boxes and classes are those of ``test``; any two visible parts identify a class
(:mod:`iadet.data.synth.classes`), so every object stays recognisable.
"""

from __future__ import annotations

import numpy as np

from iadet.data.synth.scene import Scene, SceneObject

FILLS = ("body", "background")


def body_color(obj: SceneObject, image: np.ndarray) -> np.ndarray:
    """Mean RGB of the object's visible body (its visible pixels outside every part), ``(3,)`` uint8."""
    body = obj.visible.copy()
    for part in obj.parts:
        body &= ~part
    pixels = image[body] if body.any() else image[obj.visible]
    return pixels.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)


def blank_part(image: np.ndarray, obj: SceneObject, slot: int, fill: str) -> np.ndarray:
    """``image`` (modified in place) with the visible pixels of part ``slot`` of ``obj`` blanked; returns
    the ``(H, W)`` bool mask of the pixels changed. ``fill``: ``body`` (its body colour) or ``background``."""
    mask = obj.parts[slot] & obj.visible
    if fill == "body":
        image[mask] = body_color(obj, image)
    elif fill == "background":
        if obj.under is None:
            raise ValueError("this object has no record of what is behind it")
        image[mask] = obj.under[mask]
    else:
        raise ValueError(f"unknown fill {fill!r}; expected one of {FILLS}")
    return mask


def erase_parts(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blank one or two random parts of every object, each object its own fill, from ``rng`` alone.

    Returns ``(image, erased, fraction)``: the new ``(H, W, 3)`` image, the ``(H, W)`` bool mask of
    every blanked pixel and, per object, the fraction of its silhouette blanked. Objects are
    processed in pasting order; body colours are measured before any part is blanked.
    """
    image = scene.image.copy()
    colors = [body_color(obj, scene.image) for obj in scene.objects]
    erased = np.zeros(image.shape[:2], dtype=bool)
    fraction = np.zeros(len(scene.objects))
    for k, obj in enumerate(scene.objects):
        count = int(rng.integers(1, 3))
        slots = rng.choice(4, size=count, replace=False)
        fill = FILLS[int(rng.integers(2))]
        mask = np.zeros_like(erased)
        for slot in slots:
            mask |= obj.parts[int(slot)] & obj.visible
        if fill == "body":
            image[mask] = colors[k]
        else:
            image[mask] = obj.under[mask]
        erased |= mask
        fraction[k] = float(mask.sum()) / float(obj.amodal.sum())
    return image, erased, fraction
