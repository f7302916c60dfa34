"""Source images: bundled, one role each, and the held-out occluder textures never reach training data."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from iadet.data import synth
from iadet.data.synth import sources

TRAINING_ROLES = ("part", "body", "background")


def test_every_source_has_exactly_one_known_role():
    assert len(sources.SOURCES) == len(set(sources.SOURCES))
    by_role = {role: set(sources.names_with_role(role)) for role in sources.ROLES}
    assert all(by_role.values())
    assert set().union(*by_role.values()) == set(sources.SOURCES)
    assert sum(len(names) for names in by_role.values()) == len(sources.SOURCES)
    with pytest.raises(ValueError, match="role"):
        sources.names_with_role("imagenet")


def test_held_out_sources_are_disjoint_from_training_sources():
    heldout = set(sources.names_with_role("heldout"))
    training = set().union(*(sources.names_with_role(r) for r in TRAINING_ROLES))
    assert heldout and not heldout & training


def _thumbnail(name: str) -> np.ndarray:
    image = sources.load(name)
    grey = np.asarray(Image.fromarray(image).convert("L").resize((32, 32), Image.Resampling.BILINEAR))
    grey = grey.astype(np.float64)
    return (grey - grey.mean()) / (grey.std() + 1e-9)


def test_held_out_images_are_not_copies_of_training_images():
    # e.g. skimage's cat() is chelsea(): a second name for the same photo must not cross the split
    training = [n for r in TRAINING_ROLES for n in sources.names_with_role(r) if n != "sklearn:digits"]
    for held in sources.names_with_role("heldout"):
        a = _thumbnail(held)
        for name in training:
            corr = float((a * _thumbnail(name)).mean())
            assert corr < 0.9, (held, name, corr)


def test_sources_load_offline_as_rgb():
    for name in sources.SOURCES:
        data = sources.load(name)
        assert data.dtype == np.uint8 and not data.flags.writeable
        if name == "sklearn:digits":
            assert data.shape[1:] == (8, 8) and len(data) > 1000
        else:
            assert data.ndim == 3 and data.shape[2] == 3 and max(data.shape[:2]) <= sources.MAX_SIDE


def test_training_images_never_touch_held_out_sources():
    with sources.track_use() as used:
        for split in ("trainval", "test"):
            for index in range(3):
                synth.render_image("tiny", 0, split, index)
    assert used and not used & set(sources.names_with_role("heldout"))
    with sources.track_use() as used:
        synth.render_image("tiny", 0, "test_occluded", 0)
    assert used & set(sources.names_with_role("heldout"))


def test_texture_crops_are_sized_and_seeded():
    a = sources.texture("skimage:brick", 17, 23, np.random.default_rng(1))
    b = sources.texture("skimage:brick", 17, 23, np.random.default_rng(1))
    assert a.shape == (17, 23, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
