"""Size and count parameters of the generated datasets: one frozen dataclass per preset."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from iadet.errors import ConfigError, closest


@dataclass(frozen=True)
class SynthPreset:
    """Every parameter of a generated dataset. Calibration is a change of one field here.

    Sizes are in pixels; ``(lo, hi)`` pairs are inclusive ranges sampled uniformly unless
    said otherwise.
    """

    name: str
    image_size: tuple[int, int]
    """(height, width) of every image."""
    trainval: int
    test: int
    """Images in ``test``; ``test_occluded`` holds the same scenes, occluded."""
    objects_per_image: tuple[int, int] = (1, 5)
    object_size: tuple[float, float] = (12.0, 0.6)
    """Longer side of an object before rotation: from ``lo`` pixels to ``hi`` times the image's
    shorter side, log-uniform."""
    aspect_range: float = 1.35
    """Object width/height is log-uniform in [1/aspect_range, aspect_range]."""
    max_rotation: float = 12.0
    """Objects are rotated by up to this many degrees either way."""
    max_hidden: float = 0.3
    """Largest fraction of an object's silhouette that objects pasted later may hide."""
    truncation_prob: float = 0.1
    """Chance that an object may be placed across the image border (at least 60% stays inside)."""
    distractors_per_image: tuple[int, int] = (1, 4)
    """Unannotated decoy objects (a body with a part combination that is no class) or loose parts."""
    decoy_prob: float = 0.4
    """Chance that a distractor is a decoy object rather than a cluster of 1-3 loose parts."""
    clutter_per_image: tuple[int, int] = (2, 6)
    """Free-form shapes textured with background photos, pasted on the background."""
    clutter_size: tuple[float, float] = (0.08, 0.3)
    """Half-size of a clutter shape, as a fraction of the image's shorter side."""
    occlusion_range: tuple[float, float] = (0.2, 0.6)
    """Occluder coverage of each object's box in ``test_occluded``, uniform."""
    difficult_min_size: int = 12
    """Objects whose box has a shorter side below this many pixels are ``difficult``."""
    difficult_max_hidden: float = 0.5
    """Objects with more than this fraction of their silhouette hidden are ``difficult``."""
    jpeg_quality: int = 90

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


DATASET_PRESETS: dict[str, SynthPreset] = {
    "tiny": SynthPreset(name="tiny", image_size=(128, 128), trainval=6, test=5),
    "quick": SynthPreset(name="quick", image_size=(160, 160), trainval=1000, test=250),
    "full": SynthPreset(name="full", image_size=(160, 208), trainval=3000, test=1000),
}
"""The presets: ``tiny`` for tests (16 images), ``quick`` for the demo and CPU runs, ``full`` for
benchmark-quality comparisons (3x the training images, 4x the test images, landscape images).
The shorter image side matches the ``quick`` model config's ``min_size`` (160), so the model
sees the objects at their generated size."""


def get_preset(preset: str | SynthPreset) -> SynthPreset:
    """Look a preset up by name (or pass a :class:`SynthPreset` through)."""
    if isinstance(preset, SynthPreset):
        return preset
    if preset not in DATASET_PRESETS:
        raise ConfigError(
            f"unknown synth preset '{preset}'{closest(preset, DATASET_PRESETS)}; choose from {sorted(DATASET_PRESETS)}"
        )
    return DATASET_PRESETS[preset]
