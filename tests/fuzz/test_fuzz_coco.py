"""Fuzzing COCO instances JSON: its structure (missing keys, wrong types, entries that are not objects)
and its values (ids, sizes, boxes, names, huge and non-finite numbers), and its bytes.

Each generated file ends in a dataset split (boxes finite and inside their images) or a one-line
:class:`~iadet.errors.DataError` naming the file (:mod:`fuzz.harness`).
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from fuzz.harness import fuzz_settings, outcome, scratch_dir, tried
from fuzz.test_fuzz_voc import mutated
from iadet.data.coco import open_coco

_ROOT = scratch_dir("iadet-fuzz-coco-")
(_ROOT / "annotations").mkdir()
(_ROOT / "val" / "sub").mkdir(parents=True)
Image.new("RGB", (50, 40)).save(_ROOT / "val" / "a.jpg")
Image.new("RGB", (50, 40)).save(_ROOT / "val" / "sub" / "b.jpg")
ANNOTATIONS = _ROOT / "annotations" / "instances_val.json"

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
number = st.one_of(
    st.integers(-5, 100), st.floats(-10, 100), st.sampled_from([0, -1, 1e300, 10**400]), json_value
)
ident = st.one_of(st.integers(0, 3), st.sampled_from(["1", "a", True, 1.0]), json_value)
file_name = st.one_of(
    st.sampled_from(
        ["a.jpg", "sub/b.jpg", "missing.jpg", "../a.jpg", "/etc/passwd", "sub/../a.jpg", "", "a\0.jpg"]
    ),
    st.text(max_size=12),
    json_value,
)


def _entry(fields: dict) -> st.SearchStrategy:
    """A dict with some of ``fields`` (each a strategy), sometimes extra keys, sometimes not a dict."""
    keys = list(fields)
    return st.one_of(
        st.fixed_dictionaries({}, optional=fields).flatmap(
            lambda d: st.just(d) if len(d) >= len(keys) - 1 else st.just(d)
        ),
        st.fixed_dictionaries(fields),
        json_value,
    )


image = _entry({"id": ident, "file_name": file_name, "width": number, "height": number})
category = _entry({"id": ident, "name": st.one_of(st.sampled_from(["cat", "dog", ""]), json_value)})
annotation = _entry(
    {
        "id": ident,
        "image_id": ident,
        "category_id": ident,
        "bbox": st.one_of(st.lists(number, min_size=4, max_size=4), json_value),
        "iscrowd": st.one_of(st.sampled_from([0, 1]), json_value),
    }
)
document = st.one_of(
    st.fixed_dictionaries(
        {
            "images": st.lists(image, max_size=4),
            "annotations": st.lists(annotation, max_size=6),
            "categories": st.lists(category, max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {}, optional={"images": json_value, "annotations": json_value, "categories": json_value}
    ),
    json_value,
)


@st.composite
def nearly_valid(draw) -> dict:
    """A valid document (boxes anywhere, of any size) with at most one field replaced by any JSON value:
    the values reach the code that builds the records, not only the structure checks."""
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}][: draw(st.integers(1, 2))]
    images = [
        {"id": i, "file_name": name, "width": draw(st.integers(1, 80)), "height": draw(st.integers(1, 80))}
        for i, name in enumerate(
            draw(st.lists(st.sampled_from(["a.jpg", "sub/b.jpg"]), min_size=1, max_size=3))
        )
    ]
    coordinate = st.one_of(st.integers(-100, 200), st.floats(-100, 200), st.sampled_from([0, 1e-300, 1e300]))
    annotations = [
        {
            "id": k,
            "image_id": draw(st.sampled_from([img["id"] for img in images])),
            "category_id": draw(st.sampled_from([c["id"] for c in cats])),
            "bbox": draw(st.lists(coordinate, min_size=4, max_size=4)),
            "iscrowd": draw(st.sampled_from([0, 1])),
        }
        for k in range(draw(st.integers(0, 5)))
    ]
    doc = {"images": images, "annotations": annotations, "categories": cats}
    if draw(st.booleans()):
        section = draw(st.sampled_from(["images", "annotations", "categories"]))
        if doc[section]:
            entry = draw(st.sampled_from(doc[section]))
            entry[draw(st.sampled_from(sorted(entry)))] = draw(json_value)
    return doc


@st.composite
def coco_bytes(draw) -> bytes:
    doc = draw(st.one_of(nearly_valid(), document))
    try:
        text = json.dumps(doc)  # NaN and Infinity are written as Python's json writes them
    except ValueError:  # an integer too long to print
        text = "{}"
    data = text.encode("utf-8")
    if draw(st.integers(0, 4)) == 0:
        data = draw(mutated(data))
    return data


@fuzz_settings(60)
@given(coco_bytes())
def test_coco_json(data: bytes) -> None:
    tried("coco_json")
    ANNOTATIONS.write_bytes(data)
    split = outcome("coco_json", lambda: open_coco(_ROOT, "val"), [ANNOTATIONS.name, "val/"])
    if split is not None:
        assert split.records
        for record in split.records:
            assert record.path.resolve().is_relative_to(_ROOT.resolve())
            boxes = record.boxes
            assert np.isfinite(boxes).all()
            if len(boxes):
                assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= record.width).all()
                assert (boxes[:, 3] <= record.height).all() and (boxes[:, :2] < boxes[:, 2:]).all()
