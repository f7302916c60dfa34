"""Fuzzing the VOC layout's parsers: annotation XML, split files and ``classes.txt``.

Each generated file ends in a record (whose boxes are finite and inside the image) or a one-line
:class:`~iadet.errors.DataError` naming the file (:mod:`fuzz.harness`).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from fuzz.harness import fuzz_settings, outcome, scratch_dir, tried
from iadet.data.voc import parse_annotation, read_classes, read_split, read_voc_xml

CLASSES = ("square", "bar")
WIDTH, HEIGHT = 96, 72
_COUNTER = itertools.count()
_ROOT = scratch_dir("iadet-fuzz-voc-")
(_ROOT / "Annotations").mkdir()
(_ROOT / "JPEGImages").mkdir()
(_ROOT / "ImageSets" / "Main").mkdir(parents=True)
IMAGE = _ROOT / "JPEGImages" / "000000.jpg"
Image.new("RGB", (WIDTH, HEIGHT), (30, 60, 90)).save(IMAGE)

# numbers as they are written in XML, including those that are not numbers
number_text = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", "0x10", "1_000", " 5 ", "", "1,5", "٣", "½"]),
    st.text(max_size=12),
)
name_text = st.one_of(st.sampled_from(CLASSES), st.text(max_size=20), st.text(min_size=100, max_size=300))


@st.composite
def annotation_xml(draw) -> bytes:
    """A VOC annotation with fuzzed values, tags left out, raw (unescaped) text, or hostile XML."""
    raw = draw(st.booleans())
    esc = (lambda s: s) if raw else escape

    def tag(name: str, text: str) -> str:
        return "" if draw(st.integers(0, 9)) == 0 else f"<{name}>{esc(text)}</{name}>"

    parts = ["<annotation>", tag("filename", draw(st.text(max_size=10)))]
    if draw(st.booleans()):
        parts.append(f"<size>{tag('width', draw(number_text))}{tag('height', draw(number_text))}</size>")
    for _ in range(draw(st.integers(0, 4))):
        box = "".join(tag(t, draw(number_text)) for t in ("xmin", "ymin", "xmax", "ymax"))
        parts.append(
            f"<object>{tag('name', draw(name_text))}{tag('difficult', draw(number_text))}"
            f"{'' if draw(st.integers(0, 9)) == 0 else f'<bndbox>{box}</bndbox>'}</object>"
        )
    parts.append("</annotation>")
    text = "".join(parts)
    prefix = draw(
        st.sampled_from(
            [
                "",
                '<?xml version="1.0" encoding="utf-8"?>',
                '<?xml version="1.0" encoding="latin-1"?>',
                '<!DOCTYPE a [<!ENTITY e "xxxxxxxxxx"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;">]>',
                '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
                "<!DOCTYPE a SYSTEM 'http://example.invalid/a.dtd'>",
            ]
        )
    )
    data = (prefix + text).encode("utf-8")
    return draw(mutated(data))


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data`` unchanged, truncated, with bytes overwritten or inserted, or nested deeply."""
    # positions are drawn independently of len(data), so that an input whose length varies from run to
    # run (torch.save's legacy format names storages by id()) still replays as the same example
    kind = draw(st.integers(0, 5))
    if kind == 1 and data:
        return data[: draw(st.integers(0, 2**20)) % len(data)]
    if kind == 2 and data:
        at = draw(st.integers(0, 2**20)) % len(data)
        return data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at + 1 :]
    if kind == 3:
        at = draw(st.integers(0, 2**20)) % (len(data) + 1)
        return data[:at] + draw(st.binary(max_size=16)) + data[at:]
    if kind == 4:
        depth = draw(st.integers(100, 3000))
        return b"<annotation>" + b"<a>" * depth + b"</a>" * depth + b"</annotation>"
    return data


def _write(data: bytes, suffix: str) -> Path:
    path = _ROOT / "Annotations" / f"{next(_COUNTER):06d}{suffix}"
    path.write_bytes(data)
    return path


@fuzz_settings(60)
@given(annotation_xml())
def test_voc_annotation(data: bytes) -> None:
    tried("voc_annotation")
    xml = _write(data, ".xml")
    try:
        record = outcome("voc_annotation", lambda: parse_annotation(xml, CLASSES, IMAGE), [xml.name])
        if record is not None:
            assert (record.width, record.height) == (WIDTH, HEIGHT)
            assert record.boxes.shape == (len(record.labels), 4)
            assert np.isfinite(record.boxes).all()
            if len(record.boxes):
                assert (record.boxes[:, :2] >= 0).all() and (record.boxes[:, 2] <= WIDTH - 1).all()
                assert (record.boxes[:, 3] <= HEIGHT - 1).all()
                assert (record.boxes[:, :2] <= record.boxes[:, 2:]).all()
            assert set(record.labels.tolist()) <= {1, 2}
        parsed = outcome(
            "voc_annotation", lambda: read_voc_xml(xml), [xml.name]
        )  # the devkit evaluation's reader
        if parsed is not None:
            assert all(math.isfinite(v) for obj in parsed[1] for v in obj.box)
    finally:
        xml.unlink()


# split files and classes.txt: bytes, encodings, line ends
line_end = st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\x1c", "\u2028", ""])
id_text = st.one_of(
    st.from_regex(r"[0-9]{6}", fullmatch=True),
    st.sampled_from(
        ["../x", "/etc/passwd", "a/b", "..", ".", "C:\\x", "a\\b", "id 1", "id -1", "id 2", "a b c"]
    ),
    st.text(max_size=12),
)


@st.composite
def text_file(draw) -> bytes:
    lines = draw(st.lists(id_text, max_size=8))
    text = "".join(line + draw(line_end) for line in lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.booleans()):
        data = draw(mutated(data))
    return data


@fuzz_settings(60)
@given(text_file())
def test_split_file(data: bytes) -> None:
    tried("split_file")
    split = _ROOT / "ImageSets" / "Main" / "fuzz.txt"
    split.write_bytes(data)
    ids = outcome("split_file", lambda: read_split(_ROOT, "fuzz"), [split.name])
    if ids is not None:
        assert ids and all(i and "/" not in i and "\\" not in i and i not in (".", "..") for i in ids)
        assert not any(c.isspace() for i in ids for c in i if c in " \t\r\n")


@fuzz_settings(60)
@given(text_file())
def test_classes_file(data: bytes) -> None:
    tried("classes_file")
    path = _ROOT / "classes.txt"
    path.write_bytes(data)
    try:
        names = outcome("classes_file", lambda: read_classes(_ROOT), [path.name])
        if names is not None:
            assert names and len(set(names)) == len(names) and all(n == n.strip() and n for n in names)
    finally:
        path.unlink()
