"""The built-in dataset on the ``tiny`` preset: VOC layout, determinism, test_occluded, flags, masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from defusedxml import ElementTree
from PIL import Image

from iadet.data import synth
from iadet.data.synth import voc as synth_voc
from iadet.data.voc import open_voc
from iadet.errors import ConfigError, DataError

TINY = synth.DATASET_PRESETS["tiny"]
SPLIT_SIZES = {
    "trainval": TINY.trainval,
    "test": TINY.test,
    "test_occluded": TINY.test,
    "test_erased": TINY.test,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.generate_dataset(tmp_path_factory.mktemp("synth") / "tiny", "tiny", seed=0)


def _ids(root: Path, split: str, kind: str = "Main") -> list[str]:
    return (root / "ImageSets" / kind / f"{split}.txt").read_text().split()


def _objects(xml: Path) -> list[dict]:
    root = ElementTree.parse(str(xml)).getroot()
    out = []
    for obj in root.findall("object"):
        box = tuple(int(obj.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax"))
        out.append(
            {
                "name": obj.find("name").text,
                "box": box,
                "pose": obj.find("pose").text,
                "truncated": obj.find("truncated").text,
                "difficult": obj.find("difficult").text,
                "occlusion": float(obj.find("occlusion").text),
                "hidden": float(obj.find("hidden").text),
            }
        )
    return out


def _all_xml(root: Path) -> list[Path]:
    return sorted((root / "Annotations").glob("*.xml"))


def test_voc_layout(tiny: Path):
    for split, n in SPLIT_SIZES.items():
        ids = _ids(tiny, split)
        assert len(ids) == n == len(set(ids))
        assert _ids(tiny, split, "Segmentation") == ids
        for i in ids:
            for sub, ext in (("Annotations", "xml"), ("JPEGImages", "jpg"), ("SegmentationObject", "png"),
                             ("SegmentationClass", "png")):  # fmt: skip
                assert (tiny / sub / f"{i}.{ext}").is_file(), (sub, i)
    assert _ids(tiny, "test_occluded") == [f"{i}_occ" for i in _ids(tiny, "test")]
    assert not set(_ids(tiny, "trainval")) & set(_ids(tiny, "test"))
    assert (tiny / "classes.txt").read_text().split() == list(synth.CLASSES)
    assert len(list((tiny / "JPEGImages").iterdir())) == sum(SPLIT_SIZES.values())
    assert not list(tiny.parent.glob("tiny.tmp-*"))


def test_manifest_records_preset_seed_and_counts(tiny: Path):
    manifest = json.loads((tiny / "synth.json").read_text())
    assert manifest["preset"] == "tiny" and manifest["seed"] == 0
    assert manifest["generator_version"] == synth.GENERATOR_VERSION
    assert manifest["parameters"]["trainval"] == TINY.trainval
    assert manifest["classes"] == list(synth.CLASSES)
    for split, n in SPLIT_SIZES.items():
        stats = manifest["splits"][split]
        assert stats["images"] == n
        assert stats["objects"] == sum(
            len(_objects(tiny / "Annotations" / f"{i}.xml")) for i in _ids(tiny, split)
        )
        assert sum(stats["objects_per_class"].values()) == stats["objects"]
    assert synth.dataset_matches(tiny, "tiny", 0)
    assert not synth.dataset_matches(tiny, "tiny", 1) and not synth.dataset_matches(tiny, "quick", 0)


def test_annotations_are_valid_voc(tiny: Path):
    n_objects = 0
    for xml in _all_xml(tiny):
        root = ElementTree.parse(str(xml)).getroot()
        assert root.tag == "annotation" and root.find("filename").text == f"{xml.stem}.jpg"
        width, height = (int(root.find(f"size/{k}").text) for k in ("width", "height"))
        assert root.find("size/depth").text == "3" and root.find("segmented").text == "1"
        with Image.open(tiny / "JPEGImages" / f"{xml.stem}.jpg") as image:
            assert image.size == (width, height) and image.mode == "RGB"
        assert (height, width) == TINY.image_size
        objects = _objects(xml)
        assert objects, f"{xml.name} has no object"
        for o in objects:
            n_objects += 1
            assert o["name"] in synth.CLASSES and o["pose"] == "Unspecified"
            assert o["truncated"] in ("0", "1") and o["difficult"] in ("0", "1")
            xmin, ymin, xmax, ymax = o["box"]
            assert 1 <= xmin <= xmax <= width and 1 <= ymin <= ymax <= height, (xml.name, o)
            assert 0.0 <= o["occlusion"] <= 1.0 and 0.0 <= o["hidden"] <= 1.0
    assert n_objects >= sum(SPLIT_SIZES.values())


def test_the_project_loader_reads_every_split(tiny: Path):
    for split, n in SPLIT_SIZES.items():
        ds = open_voc(tiny, split)
        assert len(ds.records) == n and tuple(ds.classes) == synth.CLASSES


def test_same_seed_same_bytes_other_seed_other_images(tiny: Path, tmp_path: Path):
    again = synth.generate_dataset(tmp_path / "again", "tiny", seed=0)
    files = sorted(p.relative_to(tiny) for p in tiny.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (tiny / name).read_bytes() == (again / name).read_bytes(), name
    other = synth.generate_dataset(tmp_path / "other", "tiny", seed=1)
    for i in (_ids(tiny, "trainval")[0], _ids(tiny, "test")[1], _ids(tiny, "test_occluded")[2]):
        assert (tiny / "JPEGImages" / f"{i}.jpg").read_bytes() != (
            other / "JPEGImages" / f"{i}.jpg"
        ).read_bytes()


def test_each_image_renders_alone_as_in_the_dataset(tiny: Path):
    for split, index in (("trainval", 5), ("test_occluded", 2)):
        rendered = synth.render_image("tiny", 0, split, index)
        ident = synth.image_id(split, index)
        text = synth_voc.annotation_xml(ident, *rendered.image.shape[:2], rendered.objects, "iadet-synth")
        assert text == (tiny / "Annotations" / f"{ident}.xml").read_text()
        stored = np.asarray(Image.open(tiny / "SegmentationObject" / f"{ident}.png"))
        assert np.array_equal(stored, rendered.instance_map)


def test_test_occluded_is_test_with_occluders(tiny: Path):
    lo, hi = TINY.occlusion_range
    for i in _ids(tiny, "test"):
        clean = _objects(tiny / "Annotations" / f"{i}.xml")
        occluded = _objects(tiny / "Annotations" / f"{i}_occ.xml")
        keys = ("name", "box", "truncated")
        assert [[o[k] for k in keys] for o in clean] == [[o[k] for k in keys] for o in occluded]
        for c, o in zip(clean, occluded):
            assert c["occlusion"] == 0.0
            assert o["hidden"] >= c["hidden"] - 1e-3
            w, h = o["box"][2] - o["box"][0] + 1, o["box"][3] - o["box"][1] + 1
            if min(w, h) >= 16:  # pixel-exact up to overlapping boxes; a small box may be off
                assert lo - 0.05 <= o["occlusion"] <= hi + 0.05, (i, o)
        a = np.asarray(Image.open(tiny / "JPEGImages" / f"{i}.jpg"), dtype=np.int16)
        b = np.asarray(Image.open(tiny / "JPEGImages" / f"{i}_occ.jpg"), dtype=np.int16)
        changed = np.abs(a - b).max(axis=2) > 40
        void = np.asarray(Image.open(tiny / "SegmentationObject" / f"{i}_occ.png")) == 255
        # the occluders (void where they hide an object) replaced those pixels, not the whole image
        assert void.any() and changed[void].mean() > 0.5 and changed.mean() < 0.9
    for i in _ids(tiny, "trainval"):
        assert all(o["occlusion"] == 0.0 for o in _objects(tiny / "Annotations" / f"{i}.xml"))


def test_difficult_and_truncated_follow_the_rules(tiny: Path):
    difficult_seen = 0
    for xml in _all_xml(tiny):
        with Image.open(tiny / "JPEGImages" / f"{xml.stem}.jpg") as image:
            width, height = image.size
        for o in _objects(xml):
            xmin, ymin, xmax, ymax = o["box"]
            small = min(xmax - xmin + 1, ymax - ymin + 1) < TINY.difficult_min_size
            # recorded with 3 decimals: leave the threshold itself out
            if abs(o["hidden"] - TINY.difficult_max_hidden) > 1e-3:
                expected = small or o["hidden"] > TINY.difficult_max_hidden
                assert o["difficult"] == str(int(expected)), (xml.name, o)
            difficult_seen += o["difficult"] == "1"
            touches_border = xmin == 1 or ymin == 1 or xmax == width or ymax == height
            if o["truncated"] == "1":  # cut by the border: its clipped box reaches the border
                assert touches_border, (xml.name, o)
    assert difficult_seen  # test_occluded always holds heavily hidden objects


def test_masks_agree_with_boxes_classes_and_hidden_fractions(tiny: Path):
    for xml in _all_xml(tiny):
        objects = _objects(xml)
        with Image.open(tiny / "SegmentationObject" / f"{xml.stem}.png") as png:
            assert png.mode == "P"
            instances = np.asarray(png)
        classes = np.asarray(Image.open(tiny / "SegmentationClass" / f"{xml.stem}.png"))
        assert set(np.unique(instances)) <= {0, 255, *range(1, len(objects) + 1)}
        assert np.array_equal(instances == 0, classes == 0)
        assert np.array_equal(instances == 255, classes == 255)
        assert (255 in instances) == xml.stem.endswith(("_occ", "_erased"))
        for k, o in enumerate(objects, start=1):
            ys, xs = np.nonzero(instances == k)
            assert len(xs) > 0 or o["hidden"] > 0.99, (xml.name, k)
            if len(xs) == 0:
                continue
            xmin, ymin, xmax, ymax = (v - 1 for v in o["box"])
            assert xmin <= xs.min() and xs.max() <= xmax and ymin <= ys.min() and ys.max() <= ymax
            assert (classes[ys, xs] == synth.CLASSES.index(o["name"]) + 1).all()
            # visible pixels are (1 - hidden) of a silhouette that fits in the box
            box_area = (xmax - xmin + 1) * (ymax - ymin + 1)
            assert len(xs) <= (1.0 - o["hidden"]) * box_area + 1


def test_an_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from iadet.data.synth import generate as generate_module

    calls = {"n": 0}
    real = generate_module.write_image

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(generate_module, "write_image", failing)
    with pytest.raises(KeyboardInterrupt):
        synth.generate_dataset(tmp_path / "data", "tiny", seed=0)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_is_reused_refused_or_replaced(tiny: Path, tmp_path: Path):
    before = (tiny / "synth.json").stat().st_mtime_ns
    assert synth.generate_dataset(tiny, "tiny", seed=0) == tiny
    assert (tiny / "synth.json").stat().st_mtime_ns == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists"):
        synth.generate_dataset(other, "tiny", seed=0)
    assert (other / "notes.txt").read_text() == "mine"
    synth.generate_dataset(other, "tiny", seed=0, overwrite=True)
    assert synth.dataset_matches(other, "tiny", 0) and not (other / "notes.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_unknown_preset_and_bad_seed_are_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="did you mean 'quick'"):
        synth.generate_dataset(tmp_path / "x", "quik")
    with pytest.raises(ConfigError, match="seed"):
        synth.generate_dataset(tmp_path / "x", "tiny", seed=-1)
    assert not (tmp_path / "x").exists()


def test_presets_are_frozen_and_ordered_by_size():
    tiny, quick, full = (synth.DATASET_PRESETS[k] for k in ("tiny", "quick", "full"))
    with pytest.raises(AttributeError):
        quick.trainval = 1  # type: ignore[misc]
    assert tiny.trainval + 2 * tiny.test <= 20
    assert tiny.trainval < quick.trainval < full.trainval and quick.test < full.test
    assert min(full.image_size) >= min(quick.image_size)
    for p in (tiny, quick, full):
        assert 0.0 < p.occlusion_range[0] < p.occlusion_range[1] < 1.0
        assert p.objects_per_image[0] >= 1


def test_existing_splits_are_byte_identical_to_generator_3(tiny: Path):
    """Adding ``test_erased`` (generator 4) left every file of the other splits as generator 3 wrote it."""
    import hashlib
    import json

    reference = json.loads((Path(__file__).parent / "synth_tiny_files.json").read_text())
    for name, digest in reference.items():
        assert hashlib.sha256((tiny / name).read_bytes()).hexdigest()[:16] == digest, name


def test_test_erased_blanks_one_or_two_parts_of_every_object_of_the_test_scenes(tiny: Path):
    from iadet.data.synth.erasing import erase_parts
    from iadet.data.synth.generate import image_rng, render_test_scene

    assert _ids(tiny, "test_erased") == [f"{i}_erased" for i in _ids(tiny, "test")]
    for index in range(TINY.test):
        test = synth.render_image("tiny", 0, "test", index)
        erased = synth.render_image("tiny", 0, "test_erased", index)
        assert [(o.name, o.box, o.difficult) for o in erased.objects] == [
            (o.name, o.box, o.difficult) for o in test.objects
        ]
        scene = render_test_scene("tiny", 0, "test_erased", index)
        changed = (erased.image != test.image).any(axis=2)
        for obj, record in zip(scene.objects, erased.objects):
            blanked = [bool((changed & p & obj.visible).any()) for p in obj.parts]
            visible_parts = [bool((p & obj.visible).any()) for p in obj.parts]
            assert sum(blanked) <= 2 and (sum(blanked) >= 1 or sum(visible_parts) < 4)
            assert 0.0 <= record.occlusion < 0.6
        # nothing outside the objects' parts changes
        parts = (
            np.logical_or.reduce([p for o in scene.objects for p in o.parts]) if scene.objects else changed
        )
        assert not (changed & ~parts).any()
        _, mask, _ = erase_parts(scene, image_rng(0, "test_erased", index))
        assert (erased.instance_map[mask] == 255).all()


def test_few_and_val_are_disjoint_subsets_of_trainval(tiny: Path):
    trainval = _ids(tiny, "trainval")
    few, val = _ids(tiny, "few"), _ids(tiny, "val")
    assert few == trainval[: len(few)] and val == trainval[len(trainval) - len(val) :]
    assert few and val and not set(few) & set(val)
    from iadet.data.synth.generate import subset_splits

    ids = [f"trainval_{i:05d}" for i in range(1000)]
    assert [len(v) for v in subset_splits(ids).values()] == [300, 200]
