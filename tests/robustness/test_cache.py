"""Tests of iadet.robustness.cache and of the corruption benchmark reading and filling it."""

from __future__ import annotations

import os

import numpy as np
import pytest

from iadet.data.catalog import open_split
from iadet.data.images import load_image
from iadet.errors import ConfigError
from iadet.robustness import evaluate as B
from iadet.robustness.cache import CorruptionCache, image_digest
from iadet.robustness.corruptions import corrupt, image_seed
from iadet.robustness.evaluate import CorruptImage, corruption_summary
from robustness.test_evaluate import ColourDetector


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    from conftest import make_voc

    root = make_voc(tmp_path_factory.mktemp("cache") / "voc", n_train=2, n_test=4)
    return open_split(root, "test")


def entries(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))


def test_key_is_image_corruption_severity_seed_and_library(tmp_path) -> None:
    cache = CorruptionCache(tmp_path, version="lib-1")
    image = np.zeros((5, 6, 3), np.uint8)
    digest = image_digest(image)
    base = cache.path(digest, "fog", 3, 7)
    assert base.parent.parent.parent.parent.parent == tmp_path  # root/version/name/severity/xx/file
    other_pixels = image.copy()
    other_pixels[0, 0, 0] = 1
    others = {
        cache.path(image_digest(other_pixels), "fog", 3, 7),
        cache.path(image_digest(image.reshape(6, 5, 3)), "fog", 3, 7),  # same bytes, other shape
        cache.path(digest, "snow", 3, 7),
        cache.path(digest, "fog", 4, 7),
        cache.path(digest, "fog", 3, 8),
        CorruptionCache(tmp_path, version="lib-2").path(digest, "fog", 3, 7),
    }
    assert base not in others and len(others) == 6
    assert cache.path(image_digest(image.copy()), "fog", 3, 7) == base


def test_round_trip_is_bit_identical_and_bad_entries_are_misses(tmp_path) -> None:
    cache = CorruptionCache(tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    path = cache.path(image_digest(image), "gaussian_noise", 5, 1)
    assert cache.load(path, image.shape) is None  # missing
    cache.save(path, image)
    np.testing.assert_array_equal(cache.load(path, image.shape), image)
    assert cache.load(path, (37, 52, 3)) is None  # another size: not this image's
    path.write_bytes(path.read_bytes()[:100])  # truncated (a disk error: writes are atomic)
    assert cache.load(path, image.shape) is None
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_an_interrupted_write_leaves_no_entry(tmp_path, monkeypatch) -> None:
    cache = CorruptionCache(tmp_path)
    image = np.full((8, 8, 3), 9, np.uint8)
    path = cache.path(image_digest(image), "fog", 1, 0)

    def killed(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.warns(UserWarning, match="No space left"):
        cache.save(path, image)
    assert not path.exists() and list(path.parent.iterdir()) == []


def test_bad_cache_directory_is_a_config_error(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        CorruptionCache(tmp_path / "file")


def test_corrupt_image_fills_then_reads_the_cache(split, tmp_path, monkeypatch) -> None:
    record = split.records[0]
    image = np.asarray(load_image(record.path))
    cache = CorruptionCache(tmp_path)
    first = CorruptImage("gaussian_noise", 2, seed=5, cache=cache)(image, record, 0)
    np.testing.assert_array_equal(
        first, corrupt(image, "gaussian_noise", 2, seed=image_seed(5, record.image_id))
    )
    assert len(entries(tmp_path)) == 1
    monkeypatch.setattr(B, "corrupt", lambda *a, **k: pytest.fail("recomputed a cached image"))
    np.testing.assert_array_equal(
        CorruptImage("gaussian_noise", 2, seed=5, cache=cache)(image, record, 0), first
    )


def test_a_second_detector_reuses_the_cache_and_scores_the_same(split, tmp_path, monkeypatch) -> None:
    kwargs = dict(corruptions="gaussian_noise,glass_blur", severities=[2, 5], seed=3, num_workers=0)
    uncached = corruption_summary(ColourDetector(), split, "cpu", **kwargs)
    first = corruption_summary(ColourDetector(), split, "cpu", cache=tmp_path, **kwargs)
    files = entries(tmp_path)
    assert len(files) == 2 * 2 * len(split.records)
    monkeypatch.setattr(B, "corrupt", lambda *a, **k: pytest.fail("recomputed a cached image"))
    second = corruption_summary(ColourDetector(), split, "cpu", cache=tmp_path, **kwargs)
    assert entries(tmp_path) == files
    assert first["corruptions"] == second["corruptions"] == uncached["corruptions"]


@pytest.mark.slow
def test_workers_fill_the_cache_as_a_serial_run_does(split, tmp_path) -> None:
    kwargs = dict(corruptions="glass_blur", severities=[3], seed=1)
    serial = corruption_summary(ColourDetector(), split, "cpu", num_workers=0, cache=tmp_path / "a", **kwargs)
    parallel = corruption_summary(
        ColourDetector(), split, "cpu", num_workers=2, cache=tmp_path / "b", **kwargs
    )
    assert parallel["corruptions"] == serial["corruptions"]
    names = entries(tmp_path / "a")
    assert names == entries(tmp_path / "b") and len(names) == len(split.records)
    for name in names:
        np.testing.assert_array_equal(
            np.asarray(load_image(tmp_path / "a" / name)), np.asarray(load_image(tmp_path / "b" / name))
        )
