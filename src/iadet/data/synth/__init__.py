"""Built-in synthetic occlusion dataset in PASCAL VOC layout, made from bundled real images.

Objects are composite: a body carrying four parts (handwritten digits, coins, dahlia petals,
cat's eyes) in a 2x2 layout that codes the class, on cluttered photo backgrounds with
unannotated decoys. ``test_occluded`` repeats ``test`` with held-out occluder textures over
20-60% of every object. See ``docs/synth.md`` for the design.

Public API: :func:`generate_dataset`, :data:`DATASET_PRESETS`, :class:`SynthPreset`, :data:`CLASSES`,
:func:`paste_occluders`.
"""

from __future__ import annotations

from iadet.data.synth.classes import CLASS_CODES, CLASSES, DECOY_CODES, PART_KINDS
from iadet.data.synth.generate import (
    GENERATOR_VERSION,
    SPLITS,
    dataset_matches,
    generate_dataset,
    image_id,
    read_manifest,
    render_image,
)
from iadet.data.synth.occluders import occlude, paste_occluders
from iadet.data.synth.presets import DATASET_PRESETS, SynthPreset, get_preset

__all__ = [
    "CLASSES",
    "CLASS_CODES",
    "DECOY_CODES",
    "GENERATOR_VERSION",
    "PART_KINDS",
    "DATASET_PRESETS",
    "SPLITS",
    "SynthPreset",
    "dataset_matches",
    "generate_dataset",
    "get_preset",
    "image_id",
    "occlude",
    "paste_occluders",
    "read_manifest",
    "render_image",
]
