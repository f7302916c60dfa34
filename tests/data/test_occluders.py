"""paste_occluders: coverage as requested, the box convention, textures from the held-out source only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iadet.data import occluders
from iadet.data.synth import sources
from iadet.data.synth.occluders import box_pixels, occlude, paste_occluders


def _image(seed: int = 0, height: int = 120, width: int = 160) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _separate_boxes(rng: np.random.Generator, height: int, width: int, n: int) -> np.ndarray:
    """n non-overlapping inclusive boxes, each at least 16 px a side (one per column band)."""
    band = width // n
    boxes = []
    for k in range(n):
        w = int(rng.integers(16, band - 2))
        h = int(rng.integers(16, height - 2))
        x1 = k * band + int(rng.integers(0, band - w))
        y1 = int(rng.integers(0, height - h))
        boxes.append([x1, y1, x1 + w - 1, y1 + h - 1])
    return np.array(boxes, dtype=np.float64)


def test_the_public_path_is_the_implementation():
    assert occluders.paste_occluders is paste_occluders


def test_box_pixels_is_inclusive_and_clipped():
    assert box_pixels(np.array([0, 0, 9, 4]), 100, 100) == (slice(0, 5), slice(0, 10))
    assert box_pixels(np.array([-5, 90, 3, 120]), 100, 100) == (slice(90, 100), slice(0, 4))
    rows, cols = box_pixels(np.array([200, 200, 210, 210]), 100, 100)
    assert rows.stop - rows.start == 0 and cols.stop - cols.start == 0
    # fractional boxes hold the pixels whose centres fall in [x1, x2 + 1)
    assert box_pixels(np.array([0.6, 0.4, 2.4, 2.6]), 10, 10) == (slice(0, 4), slice(1, 3))


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.35, 0.5, 0.6, 0.8])
def test_each_box_gets_the_requested_coverage(fraction: float):
    rng = np.random.default_rng(int(fraction * 1000))
    image = _image()
    for _ in range(4):
        boxes = _separate_boxes(rng, 120, 160, 3)
        out, covered = paste_occluders(image, boxes, fraction, rng)
        assert out.shape == image.shape and out.dtype == np.uint8
        np.testing.assert_allclose(covered, fraction, atol=0.05)


# derandomize: CI must not depend on the examples a run happens to draw; the one failure found so far
# is kept below as a strict xfail until the generator is fixed (a fix changes the frozen built-in data).
@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 4),
    fractions=st.lists(st.floats(0.05, 0.7), min_size=4, max_size=4),
)
def test_coverage_per_box_within_tolerance(seed: int, n: int, fractions: list[float]):
    rng = np.random.default_rng(seed)
    boxes = _separate_boxes(rng, 96, 200, n)
    wanted = np.array(fractions[:n])
    result = occlude(_image(seed % 7, 96, 200), boxes, wanted, rng)
    np.testing.assert_allclose(result.coverage, wanted, atol=0.05)
    # the reported coverage is the share of each box's pixels under the returned mask
    for box, cov in zip(boxes, result.coverage):
        rows, cols = box_pixels(box, 96, 200)
        assert cov == pytest.approx(result.mask[rows, cols].mean())


@pytest.mark.xfail(
    strict=True, reason="known: a thin 19x67 px box overshoots 0.5 (0.63); generator v3 is frozen"
)
def test_thin_box_coverage_known_overshoot():
    rng = np.random.default_rng(4328)
    boxes = _separate_boxes(rng, 96, 200, 1)
    result = occlude(_image(4328 % 7, 96, 200), boxes, np.array([0.5]), rng)
    np.testing.assert_allclose(result.coverage, [0.5], atol=0.05)


def test_overlapping_boxes_stay_close_to_their_targets():
    rng = np.random.default_rng(3)
    boxes = np.array([[10, 10, 79, 69], [40, 30, 119, 99], [60, 5, 99, 44]], dtype=np.float64)
    errors = []
    for _ in range(10):
        wanted = rng.uniform(0.2, 0.6, size=3)
        _, covered = paste_occluders(_image(1), boxes, wanted, rng)
        errors.append(np.abs(covered - wanted))
    assert np.mean(errors) < 0.03 and np.max(errors) < 0.15


def test_only_occluder_pixels_change_and_the_input_is_kept():
    image = _image(2)
    copy = image.copy()
    result = occlude(image, np.array([[20, 20, 99, 89]]), 0.4, np.random.default_rng(0))
    assert np.array_equal(image, copy)
    changed = (result.image != image).any(axis=2)
    assert not (changed & ~result.mask).any()
    assert changed[result.mask].mean() > 0.9  # textures, not the original pixels


def test_zero_fraction_and_empty_boxes_change_nothing():
    image = _image(4)
    rng = np.random.default_rng(0)
    out, covered = paste_occluders(image, np.array([[5, 5, 60, 60], [70, 10, 150, 100]]), 0.0, rng)
    assert np.array_equal(out, image) and (covered == 0).all()
    out, covered = paste_occluders(image, np.zeros((0, 4)), 0.5, rng)
    assert np.array_equal(out, image) and covered.shape == (0,)
    out, covered = paste_occluders(image, np.array([[500, 500, 600, 600]]), 0.5, rng)
    assert np.array_equal(out, image) and covered.tolist() == [0.0]


def test_same_generator_state_same_occluders():
    boxes = np.array([[10, 10, 70, 80], [90, 20, 150, 110]], dtype=np.float64)
    a = paste_occluders(_image(), boxes, 0.45, np.random.default_rng(7))
    b = paste_occluders(_image(), boxes, 0.45, np.random.default_rng(7))
    c = paste_occluders(_image(), boxes, 0.45, np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_occluder_shapes_vary():
    rng = np.random.default_rng(5)
    fills = []
    for _ in range(30):
        result = occlude(_image(), np.array([[40, 30, 119, 89]]), 0.35, rng, max_pieces=1)
        ys, xs = np.nonzero(result.mask)
        fills.append(len(ys) / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)))
    # how much of its bounding rectangle the occluder fills: compact blocks to thin slanted bars
    fills = np.array(fills)
    assert fills.max() > 0.8 and fills.min() < 0.4 and len({round(f, 2) for f in fills}) > 15


@pytest.mark.parametrize(("source", "role"), [("heldout", "heldout"), ("train", "background")])
def test_textures_come_from_the_named_source_only(source: str, role: str):
    with sources.track_use() as used:
        paste_occluders(_image(), np.array([[10, 10, 90, 90]]), 0.5, np.random.default_rng(0), source=source)
    assert used and used <= set(sources.names_with_role(role))


def test_bad_arguments_are_refused():
    rng = np.random.default_rng(0)
    boxes = np.array([[0, 0, 9, 9]])
    with pytest.raises(ValueError, match="fraction"):
        paste_occluders(_image(), boxes, 1.5, rng)
    with pytest.raises(ValueError, match="fraction"):
        paste_occluders(_image(), boxes, float("nan"), rng)
    with pytest.raises(ValueError, match="uint8"):
        paste_occluders(_image().astype(np.float32), boxes, 0.3, rng)
    with pytest.raises(ValueError, match="source"):
        paste_occluders(_image(), boxes, 0.3, rng, source="imagenet")
