import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from iadet.data.catalog import open_split
from iadet.data.voc import open_voc
from iadet.errors import DataError

from conftest import CLASSES, write_voc_xml


def test_boxes_are_zero_based_and_difficult_kept(voc_root: Path):
    write_voc_xml(
        voc_root / "Annotations" / "000000.xml",
        "000000.jpg",
        96,
        72,
        [{"name": "square", "box": (1, 2, 10, 20)}, {"name": "bar", "box": (5, 5, 40, 12), "difficult": 1}],
    )
    ds = open_voc(voc_root, "trainval", CLASSES)
    record = next(r for r in ds.records if r.image_id == "000000")
    np.testing.assert_array_equal(record.boxes, [[0, 1, 9, 19], [4, 4, 39, 11]])
    np.testing.assert_array_equal(record.labels, [1, 2])
    np.testing.assert_array_equal(record.difficult, [False, True])
    assert (record.width, record.height) == (96, 72)


def test_classes_from_classes_txt(voc_root: Path):
    assert open_voc(voc_root, "test").classes == CLASSES


def _break(voc_root: Path, objects, name="000001"):
    write_voc_xml(voc_root / "Annotations" / f"{name}.xml", f"{name}.jpg", 96, 72, objects)


@pytest.mark.parametrize(
    "objects, message",
    [
        (
            [{"name": "sqaure", "box": (1, 1, 5, 5)}],
            r"000001.xml: object 1 has unknown class 'sqaure' \(did you mean 'square'\?\)",
        ),
        ([{"name": "bar", "box": (20, 1, 5, 5)}], r"000001.xml: object 1 \('bar'\) has xmin > xmax"),
        ([{"name": "bar", "box": (1, 30, 5, 5)}], r"xmin > xmax or ymin > ymax"),
        ([{"name": "bar", "box": (200, 1, 300, 5)}], r"lies entirely outside the 96x72 image"),
        # one parser for training and the devkit evaluation: a non-finite coordinate is refused by both
        (
            [{"name": "bar", "box": ("nan", 1, 5, 5)}],
            r"000001.xml: object 1 \('bar'\) has a bad <xmin>: 'nan'",
        ),
        ([{"name": "bar", "box": (1, 1, "inf", 5)}], r"has a bad <xmax>: 'inf'"),
    ],
)
def test_bad_boxes_and_classes_name_the_file(voc_root: Path, objects, message):
    _break(voc_root, objects)
    with pytest.raises(DataError, match=message):
        open_voc(voc_root, "trainval")


def test_partly_outside_boxes_are_clipped_with_one_warning(voc_root: Path):
    _break(voc_root, [{"name": "bar", "box": (-5, 1, 120, 5)}], "000001")
    _break(voc_root, [{"name": "bar", "box": (1, -3, 5, 90)}], "000002")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = open_voc(voc_root, "trainval")
    messages = [str(w.message) for w in caught if "clipped" in str(w.message)]
    assert len(messages) == 1 and "2 box(es)" in messages[0] and "000001.xml" in messages[0]
    record = next(r for r in ds.records if r.image_id == "000001")
    np.testing.assert_array_equal(record.boxes, [[0, 0, 95, 4]])


def test_malformed_and_truncated_xml(voc_root: Path):
    (voc_root / "Annotations" / "000003.xml").write_text("<annotation><object><name>bar</name>")
    with pytest.raises(DataError, match=r"000003.xml: malformed XML \(line 1\)"):
        open_voc(voc_root, "trainval")


def test_entity_expansion_is_refused(voc_root: Path):
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<annotation><filename>&lol2;</filename></annotation>"
    )
    (voc_root / "Annotations" / "000004.xml").write_text(bomb)
    with pytest.raises(DataError, match=r"000004.xml: refused unsafe XML"):
        open_voc(voc_root, "trainval")


def test_missing_image_missing_xml_and_empty_split(voc_root: Path):
    (voc_root / "JPEGImages" / "000005.jpg").unlink()
    with pytest.raises(DataError, match=r"000005.jpg: image listed in the split has no file"):
        open_voc(voc_root, "trainval")
    shutil.copy(voc_root / "JPEGImages" / "000006.jpg", voc_root / "JPEGImages" / "000005.jpg")
    (voc_root / "Annotations" / "000007.xml").unlink()
    with pytest.raises(DataError, match=r"000007.xml: annotation file not found"):
        open_voc(voc_root, "trainval")
    (voc_root / "ImageSets" / "Main" / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match=r"empty.txt: empty split file"):
        open_voc(voc_root, "empty")
    with pytest.raises(DataError, match=r"nosuch.txt: split file not found \(available: .*test.*trainval"):
        open_voc(voc_root, "nosuch")


def test_truncated_image_is_caught_by_header_check(voc_root: Path):
    (voc_root / "JPEGImages" / "000002.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"000002.jpg: not an image file"):
        open_voc(voc_root, "trainval")


@pytest.mark.parametrize("bad_id", ["../escape", "/etc/passwd", "a/b"])
def test_ids_escaping_the_root_are_refused(voc_root: Path, bad_id: str):
    (voc_root / "ImageSets" / "Main" / "evil.txt").write_text(f"000000\n{bad_id}\n")
    with pytest.raises(DataError, match=r"evil.txt:2: image id .* is not a plain file name \(refused\)"):
        open_voc(voc_root, "evil")


def test_missing_directory():
    with pytest.raises(DataError, match="nowhere: data directory not found"):
        open_voc(Path("/nowhere"), "trainval")


def test_devkit_and_concatenated_splits(tmp_path: Path):
    from conftest import make_voc

    make_voc(tmp_path / "VOCdevkit" / "VOC2007", n_train=4, n_test=2, seed=1)
    make_voc(tmp_path / "VOCdevkit" / "VOC2012", n_train=3, n_test=2, seed=2)
    # give the 2012 images distinct ids, as VOC does
    root12 = tmp_path / "VOCdevkit" / "VOC2012"
    ids = (root12 / "ImageSets/Main/trainval.txt").read_text().split()
    for i in ids:
        (root12 / "Annotations" / f"{i}.xml").rename(root12 / "Annotations" / f"2012_{i}.xml")
        (root12 / "JPEGImages" / f"{i}.jpg").rename(root12 / "JPEGImages" / f"2012_{i}.jpg")
    (root12 / "ImageSets/Main/trainval.txt").write_text("\n".join(f"2012_{i}" for i in ids))
    devkit = tmp_path / "VOCdevkit"
    both = open_split(devkit, "VOC2007/trainval+VOC2012/trainval")
    assert len(both.records) == 7
    with pytest.raises(DataError, match="VOCdevkit: name the sub-dataset, e.g. VOC2007/trainval"):
        open_split(devkit, "trainval")
    with pytest.raises(DataError, match="more than one of the splits"):
        open_split(devkit, "VOC2007/trainval+VOC2007/trainval")
