"""The built-in data: determinism, VOC validity, test_occluded, difficult flags, masks, held-out occluders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from defusedxml import ElementTree
from PIL import Image

from iadet.data import sources, synth
from iadet.data.occluders import paste_occluders
from iadet.data.voc import open_voc


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory) -> Path:
    return synth.generate_dataset(tmp_path_factory.mktemp("synth") / "tiny", "tiny", seed=0)


def _objects(xml: Path) -> list[dict]:
    out = []
    for obj in ElementTree.parse(str(xml)).getroot().findall("object"):
        box = tuple(int(obj.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax"))
        out.append(
            {
                "name": obj.find("name").text,
                "box": box,
                "difficult": obj.find("difficult").text == "1",
                "occlusion": float(obj.find("occlusion").text),
            }
        )
    return out


def test_layout_and_classes(tiny_synth: Path):
    for sub in ("Annotations", "JPEGImages", "SegmentationObject", "SegmentationClass"):
        assert (tiny_synth / sub).is_dir()
    for split, n in (("trainval", 16), ("test", 8), ("test_occluded", 8)):
        ds = open_voc(tiny_synth, split)
        assert len(ds.records) == n and ds.classes == synth.CLASSES
        for r in ds.records:
            assert (r.boxes[:, :2] >= 0).all() and (r.boxes[:, 2] <= r.width - 1).all()
            assert (r.boxes[:, 3] <= r.height - 1).all() and (r.boxes[:, 0] <= r.boxes[:, 2]).all()
    assert (tiny_synth / "synth.json").is_file()


def test_deterministic_per_seed(tiny_synth: Path, tmp_path: Path):
    again = synth.generate_dataset(tmp_path / "again", "tiny", seed=0)
    other = synth.generate_dataset(tmp_path / "other", "tiny", seed=1)
    for name in ("JPEGImages/tv000003.jpg", "Annotations/te000002.xml", "JPEGImages/te000001_occ.jpg"):
        assert (tiny_synth / name).read_bytes() == (again / name).read_bytes(), name
        assert (tiny_synth / name).read_bytes() != (other / name).read_bytes(), name


def test_occluded_split_has_the_same_scenes_and_boxes(tiny_synth: Path):
    for i in range(8):
        clean = _objects(tiny_synth / "Annotations" / f"te{i:06d}.xml")
        occluded = _objects(tiny_synth / "Annotations" / f"te{i:06d}_occ.xml")
        assert [(o["name"], o["box"]) for o in clean] == [(o["name"], o["box"]) for o in occluded]
        for c, o in zip(clean, occluded):
            # an occluder over 20-60% of the box, on top of any overlap already in the scene
            assert o["occlusion"] >= max(c["occlusion"], 0.2 - 0.03)
        a = np.asarray(Image.open(tiny_synth / "JPEGImages" / f"te{i:06d}.jpg"))
        b = np.asarray(Image.open(tiny_synth / "JPEGImages" / f"te{i:06d}_occ.jpg"))
        assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() > 1


def test_difficult_follows_size_and_occlusion(tiny_synth: Path):
    preset = synth.PRESETS["tiny"]
    seen_difficult = False
    for xml in (tiny_synth / "Annotations").glob("*.xml"):
        for o in _objects(xml):
            x1, y1, x2, y2 = o["box"]
            tiny = min(x2 - x1 + 1, y2 - y1 + 1) < preset.tiny_px
            assert o["difficult"] == (tiny or o["occlusion"] > preset.heavy_occlusion), (xml.name, o)
            seen_difficult |= o["difficult"]
    assert seen_difficult  # the occluded split has some heavily occluded objects


def test_instance_masks_lie_inside_their_boxes(tiny_synth: Path):
    for xml in sorted((tiny_synth / "Annotations").glob("*.xml"))[:10]:
        objects = _objects(xml)
        index = np.asarray(Image.open(tiny_synth / "SegmentationObject" / f"{xml.stem}.png"))
        for k, o in enumerate(objects, 1):
            ys, xs = np.nonzero(index == k)
            if len(xs) == 0:
                continue
            x1, y1, x2, y2 = (v - 1 for v in o["box"])
            assert xs.min() >= x1 and xs.max() <= x2 and ys.min() >= y1 and ys.max() <= y2
            # the hidden share is of the object's own pixels, which fill most of its box
            box_area = (x2 - x1 + 1) * (y2 - y1 + 1)
            assert len(xs) / box_area <= 1 - o["occlusion"] + 0.002
            assert len(xs) / box_area >= 0.8 * (1 - o["occlusion"])


def test_occluder_sources_are_held_out():
    assert set(sources.TRAIN_SOURCES).isdisjoint(sources.HELDOUT_SOURCES)
    train_glyphs = set(sources.glyph_pool(3, "train"))
    assert train_glyphs.isdisjoint(sources.glyph_pool(3, "test"))


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.35, 0.5, 0.6])
def test_paste_occluders_covers_the_requested_fraction(fraction: float):
    rng = np.random.default_rng(int(fraction * 100))
    image = np.full((120, 160, 3), 128, np.uint8)
    boxes = np.array([[5, 5, 44, 54], [60, 10, 139, 49], [20, 70, 79, 109]], np.float64)
    for _ in range(5):
        out, covered = paste_occluders(image, boxes, fraction, rng)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.abs(covered - fraction).max() <= 0.05, covered
    untouched, none = paste_occluders(image, boxes, 0.0, rng)
    assert (untouched == image).all() and (none == 0).all()
