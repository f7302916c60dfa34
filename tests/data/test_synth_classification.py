"""The pretraining task: at least 50 classes, none a detection class, deterministic images, no held-out source."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from iadet.data import synth
from iadet.data.synth import classification as task
from iadet.data.synth import sources
from iadet.data.synth.classes import CLASS_CODES, DECOY_CODES, describe


def test_at_least_50_distinct_classes():
    assert len(task.CLASSES) >= 50
    assert len(set(task.CLASSES)) == len(task.CLASSES)
    assert len(task.CLASSES) == len(task.DIGITS) + len(task.MATERIALS) * len(task.SILHOUETTES)


def test_no_label_is_a_detection_class_or_layout():
    detection = set(synth.CLASSES)
    layouts = {describe(code) for code in (*CLASS_CODES.values(), *DECOY_CODES)}
    for name in task.CLASSES:
        assert name not in detection
        assert not any(part in name for part in detection), name
        assert name not in layouts
    # one item per image: a label names a single digit or a single material in a single silhouette
    for name in task.CLASSES:
        head, tail = name.split("-")
        assert (head == "digit" and tail.isdigit()) or (head in task.MATERIALS and tail in task.SILHOUETTES)


def test_labels_are_balanced_and_images_well_formed():
    images, labels = task.render_split(0, "val", 2 * len(task.CLASSES))
    assert images.shape == (2 * len(task.CLASSES), task.IMAGE_SIZE, task.IMAGE_SIZE, 3)
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    assert Counter(labels.tolist()) == {k: 2 for k in range(len(task.CLASSES))}
    assert all(images[i].std() > 5 for i in range(len(images)))  # not blank


def test_images_are_pure_functions_of_seed_split_and_index():
    first = task.render_example(0, "train", 5)
    task.render_example(0, "train", 6)  # rendering something else in between changes nothing
    again = task.render_example(0, "train", 5)
    assert first[1] == again[1] and np.array_equal(first[0], again[0])
    assert not np.array_equal(first[0], task.render_example(1, "train", 5)[0])  # another seed
    assert not np.array_equal(first[0], task.render_example(0, "val", 5)[0])  # the held-out split
    with pytest.raises(ValueError, match="split"):
        task.render_example(0, "test", 0)


# digests of the pixels (generator task version 1): a change here must bump TASK_VERSION, which the
# pretrained weights' fingerprint includes, so stale weights are never reused
PINNED = {
    ("train", 0): "0e07517e8792a6aa",
    ("train", 11): "97604fdc38548e3d",
    ("train", 57): "da4c153832191517",
    ("val", 3): "185c16628ff2e2af",
}


def test_pinned_images_of_task_version_1():
    assert task.TASK_VERSION == 1, "update PINNED for the new version"
    for (split, index), digest in PINNED.items():
        image, label = task.render_example(0, split, index)
        assert label == index % len(task.CLASSES)
        assert hashlib.sha256(image.tobytes()).hexdigest()[:16] == digest, (split, index)


def test_only_training_sources_are_used():
    with sources.track_use() as used:
        task.render_split(0, "train", len(task.CLASSES))
        task.render_split(0, "val", len(task.CLASSES))
    allowed = set().union(*(sources.names_with_role(r) for r in ("part", "body", "background")))
    assert used and used <= allowed
    assert not used & set(sources.names_with_role("heldout"))


def test_silhouettes_differ():
    masks = {kind: task.silhouette(kind, 32, 32) for kind in task.SILHOUETTES}
    for a in task.SILHOUETTES:
        assert 0.15 < masks[a].mean() < 0.995, a
        for b in task.SILHOUETTES:
            if a < b:
                assert (masks[a] != masks[b]).mean() > 0.05, (a, b)
    with pytest.raises(ValueError):
        task.silhouette("star", 8, 8)
