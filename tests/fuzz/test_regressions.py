"""Each failure the fuzz harness found (tests/fuzz, benchmarks/fuzz.sh), as a plain test of its minimal case.

Before the fix each of these ended in a traceback (``iadet: internal error``) or a message of several
lines or unbounded length; now each is a one-line error naming the file (or the key).
"""

from __future__ import annotations

import json
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iadet.config import load_config
from iadet.data.coco import open_coco
from iadet.data.images import image_size, load_image
from iadet.data.proposals import load_proposals
from iadet.errors import ConfigError, DataError, IadetError

from conftest import cli_fails
from conftest import train_args as _train_args


def _coco(root: Path, images: list) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "val").mkdir()
    Image.new("RGB", (50, 40)).save(root / "val" / "a.jpg")
    data = {"images": images, "annotations": [], "categories": [{"id": 1, "name": "cat"}]}
    (root / "annotations" / "instances_val.json").write_text(json.dumps(data))
    return root


def test_coco_integer_beyond_float_range(tmp_path):
    """OverflowError: int too large to convert to float (math.isfinite on 10**400)."""
    root = _coco(tmp_path / "c", [{"id": 0, "file_name": "a.jpg", "width": 1, "height": 10**400}])
    with pytest.raises(
        DataError, match=r"instances_val.json: image 0 field 'height' must be a whole number, got 1000"
    ):
        open_coco(root, "val")


def test_coco_huge_id_is_shown_shortened(tmp_path):
    """The image's id (a list holding a 400-digit number) was printed whole: a 600-character message."""
    root = _coco(tmp_path / "c", [{"id": [{"": 10**400}], "file_name": "a.jpg", "width": 0, "height": 0}])
    with pytest.raises(DataError) as info:
        open_coco(root, "val")
    message = str(info.value)
    assert "instances_val.json: image [{" in message and len(message) < 250, message


def test_coco_string_id_with_a_line_end(tmp_path):
    root = _coco(tmp_path / "c", [{"id": "a\nb", "file_name": "missing.jpg", "width": 5, "height": 5}])
    with pytest.raises(DataError) as info:
        open_coco(root, "val")
    assert "\n" not in str(info.value) and "missing.jpg" in str(info.value)


@pytest.mark.parametrize("data", [b"P6\n\x00\x00\x00\x00\x00\x0065535", b"P6\n\x0055", b"P6", b"P5\n\x00"])
def test_ppm_with_a_broken_header(tmp_path, data):
    """Pillow raises ValueError from the PPM header; image_size caught only OSError."""
    path = tmp_path / "x.ppm"
    path.write_bytes(data)
    for read in (image_size, load_image):
        with pytest.raises(DataError, match=r"x.ppm: (cannot read image|not an image)"):
            read(path)


def test_png_declaring_an_absurd_size(tmp_path):
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    path = tmp_path / "x.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2**31 - 1, 2**31 - 1, 8, 2, 0, 0, 0))
    )
    with pytest.raises(DataError, match=r"x.png: (image declares .* megapixels|not an image)"):
        image_size(path)


@pytest.mark.parametrize(
    ("name", "data", "pattern"),
    [
        ("p.mat", b"cos\nsystem\n(S'echo pwned'\ntR.", r"p.mat: unreadable .mat file"),  # scipy: IndexError
        ("p.npz", b"", r"p.npz: unreadable .npz"),  # numpy: EOFError
        ("p.npz", b"PK\x05\x06", r"p.npz: unreadable .npz"),  # zipfile.BadZipFile
        ("p.pkl", b"(dp0\nV000000\np1\n(lp2\n(lp3\na(lp4\nNaas.", r"p.pkl: proposals of image '000000' .*ragged"),
        ("p.pkl", pickle.dumps({"a": np.ones((2, 4), np.complex64)}), r"p.pkl: proposals of image 'a' .*of complex64"),
        ("p.pkl", pickle.dumps({"ids": 3, "boxes": []}), r"p.pkl: not Detectron's layout"),
        ("p.pkl", pickle.dumps({"ids": ["a"], "boxes": [[[1, 2]]], "scores": [["x"]]}), r"p.pkl: not Detectron's layout"),
    ],
)  # fmt: skip
def test_proposal_files_that_broke_their_readers(tmp_path, name, data, pattern):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataError, match=pattern):
        load_proposals(path)


def test_mat_boxes_that_are_not_rows_of_four(tmp_path):
    """numpy: cannot reshape array of size 1 into shape (4)."""
    from scipy.io import savemat

    names, boxes = np.empty(1, object), np.empty(1, object)
    names[0], boxes[0] = "000000", np.ones(1)
    savemat(tmp_path / "p.mat", {"images": names, "boxes": boxes})
    with pytest.raises(DataError, match=r"p.mat: the boxes of image '000000' are not rows of 4 numbers"):
        load_proposals(tmp_path / "p.mat")


def test_config_base_that_is_not_a_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("_base_: []\n")
    with pytest.raises(
        ConfigError, match=r"c.yaml: _base_ must be a built-in config name or a path, got \[\]"
    ):
        load_config(str(path))
    path.write_text("_base_: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"c.yaml: _base_ 'missing.yaml' is neither a built-in name"):
        load_config(str(path))


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (f"train:\n  seed: {10**30}\n", r"c.yaml: train.seed: expected an integer of at most 64 bits"),
        (
            f"train:\n  lr: {10**400}\n",
            r"c.yaml: train.lr: expected a finite number",
        ),  # float(): OverflowError
        (
            f"train:\n  batch_size: {10**400}\n",
            r"c.yaml: train.batch_size: expected an integer of at most 64 bits",
        ),
        ("train:\n  lr: !!binary aGVsbG8=\n", r"c.yaml: train.lr: expected a number, got b'hello'"),
    ],
)
def test_config_values_name_the_file(tmp_path, text, pattern):
    """Values beyond float range raised OverflowError (math.isfinite); a bad value in a file named only
    its key."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=pattern):
        load_config(str(path))


def test_override_with_a_line_end_stays_one_line():
    with pytest.raises(ConfigError) as info:
        load_config("quick", ["\r"])
    assert str(info.value) == r"override '\r' is not of the form section.key=value"
    with pytest.raises(ConfigError) as info:
        load_config("quick", ["train.l\nr=1"])
    assert "\n" not in str(info.value) and r"train.l\nr" in str(info.value)


def test_every_iadet_error_is_one_line():
    assert str(DataError("a.xml: object 1 has unknown class 'do\ng\u2028'")) == (
        r"a.xml: object 1 has unknown class 'do\ng\u2028'"
    )
    assert str(IadetError("plain message, é ü")) == "plain message, é ü"


def test_cli_prints_a_class_name_with_a_line_end_on_one_line(tmp_path, capsys):
    from conftest import make_voc

    root = make_voc(tmp_path / "voc", n_train=2, n_test=1)
    xml = root / "Annotations" / "000000.xml"
    xml.write_text(xml.read_text().replace("<name>square</name>", "<name>squ\nare</name>", 1))
    cli_fails(
        capsys, _train_args(root, tmp_path / "o"), r"000000.xml: object 1 has unknown class 'squ\\nare'", 2
    )


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.save's pre-1.6 (non-zip) format opens with this pickle


def test_legacy_checkpoint_with_a_foreign_first_byte(tmp_path):
    """IndexError from torch's unpickler: a legacy file whose first byte is not PROTO skipped the check."""
    from iadet.serialization import load_file

    data = (
        pickle.dumps(_LEGACY_MAGIC, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps({}, protocol=2)
    )
    path = tmp_path / "x.pth"
    path.write_bytes(b"t" + data[1:])
    with pytest.raises(IadetError, match=r"x.pth: truncated or not a checkpoint"):
        load_file(path)


def test_legacy_protocol_0_memo_bomb_is_checked(tmp_path):
    """Protocols 0 and 1 have no PROTO opcode: such a legacy file went to torch.load without the opcode
    check (torch refused this one for another reason); now it gets the check the zip format gets."""
    from iadet.serialization import load_file

    bomb: list = [0] * 10
    for _ in range(40):
        bomb = [bomb] * 10
    parts = [_LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}, {"config": bomb}, []]
    path = tmp_path / "bomb.pth"
    path.write_bytes(b"".join(pickle.dumps(p, protocol=0) for p in parts))
    with pytest.raises(IadetError, match=r"bomb.pth: cannot load checkpoint: it reuses a list"):
        load_file(path)


def test_legacy_checkpoint_with_a_corrupt_magic_number(tmp_path):
    """RuntimeError 'Invalid magic number' from torch's legacy reader became an UnboundLocalError in
    load_file (found by the long run, seed 1, after the fix above)."""
    from iadet.serialization import load_file

    parts = [_LEGACY_MAGIC ^ (0xFF << 8), 1001, {"protocol_version": 1001, "little_endian": True}, {}, []]
    path = tmp_path / "x.pth"
    path.write_bytes(b"".join(pickle.dumps(p, protocol=2) for p in parts))
    with pytest.raises(IadetError, match=r"x.pth: truncated or not a checkpoint \(Invalid magic number"):
        load_file(path)


def test_voc_size_beyond_any_image(tmp_path):
    """``<width>1e+248</width>`` was accepted as a whole number and printed whole: a 600-character message."""
    from iadet.data.voc import open_voc

    from conftest import make_voc

    root = make_voc(tmp_path / "voc", n_train=2, n_test=1)
    xml = root / "Annotations" / "000000.xml"
    xml.write_text(xml.read_text().replace("<width>96</width>", "<width>1e+248</width>"))
    with pytest.raises(
        DataError, match=r"000000.xml: <size> has a bad <width>: '1e\+248' \(a whole number from 0"
    ):
        open_voc(root, "trainval")


def test_voc_long_class_name_is_shown_shortened(tmp_path):
    from iadet.data.voc import open_voc

    from conftest import make_voc

    root = make_voc(tmp_path / "voc", n_train=2, n_test=1)
    xml = root / "Annotations" / "000000.xml"
    xml.write_text(xml.read_text().replace("<name>square</name>", f"<name>{'x' * 5000}</name>", 1))
    with pytest.raises(DataError) as info:
        open_voc(root, "trainval")
    assert "000000.xml: object 1 has unknown class 'xxx" in str(info.value) and len(str(info.value)) < 300


def test_coco_categories_with_integer_and_string_ids_or_one_name(tmp_path):
    """TypeError: '<' not supported between 'str' and 'int' when sorting the categories."""
    root = _coco(tmp_path / "c", [{"id": 1, "file_name": "a.jpg", "width": 50, "height": 40}])
    path = root / "annotations" / "instances_val.json"
    data = json.loads(path.read_text())
    data["categories"] = [{"id": 0, "name": "dog"}, {"id": "1", "name": "cat"}]
    path.write_text(json.dumps(data))
    assert open_coco(root, "val").classes == ("dog", "cat")  # integer ids first, then strings
    data["categories"] = [{"id": 0, "name": "cat"}, {"id": "1", "name": "cat"}]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"instances_val.json: two categories share a name"):
        open_coco(root, "val")


def test_method_name_that_is_not_a_string(tmp_path):
    """``method: {name: {C: <a 400-digit number>}}`` was printed whole: a 600-character message."""
    path = tmp_path / "c.yaml"
    path.write_text(f"method:\n  name:\n    C: {10**400}\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    message = str(info.value)
    assert (
        message.startswith(f"{path}: method.name: expected a method name, got {{'C':") and len(message) < 300
    )
    with pytest.raises(ConfigError, match=r"unknown method 'x+\.\.\.x+'; valid methods"):
        load_config("quick", ["method.name=" + "x" * 5000])


def test_coco_box_thinner_than_float32_is_dropped(tmp_path):
    """``bbox [0, 0, 1, 1e-300]``: a positive height in float64, 0 in the float32 boxes a detector gets
    (torchvision refuses boxes without a positive height during training)."""
    root = _coco(tmp_path / "c", [{"id": 1, "file_name": "a.jpg", "width": 50, "height": 40}])
    path = root / "annotations" / "instances_val.json"
    data = json.loads(path.read_text())
    data["annotations"] = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1e-300]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 5]},
    ]
    path.write_text(json.dumps(data))
    (record,) = open_coco(root, "val").records
    assert record.boxes.tolist() == [[2, 3, 12, 8]]


@pytest.mark.parametrize(
    ("offset", "value", "error"),
    [
        (8, b"\x63\x00", "NotImplementedError"),  # compression method 99: not supported
        (6, b"\x01\x00", "RuntimeError"),  # general-purpose flag bit 0: encrypted
    ],
)
def test_checkpoint_zip_with_unsupported_member_flags(tmp_path, offset, value, error):
    """zipfile's NotImplementedError (compression) and RuntimeError (encryption) escaped load_file
    (found by the long run, seed 2)."""
    import io
    import zipfile

    import torch

    from iadet.serialization import load_file

    buffer = io.BytesIO()
    torch.save({"x": torch.ones(2)}, buffer)
    data = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        pkl = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
    at = data.find(b"PK\x01\x02")
    while data[at + 46 : at + 46 + len(pkl.filename)] != pkl.filename.encode():
        at = data.find(b"PK\x01\x02", at + 4)
    data[at + offset + 2 : at + offset + 4] = value  # central header: +8 flags, +10 compression
    path = tmp_path / "x.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(IadetError, match=rf"x.pth: truncated or not a checkpoint \({error}\)"):
        load_file(path)


def test_voc_xml_declaring_an_unknown_encoding(tmp_path):
    """LookupError from the XML parser (found by the long run, seed 3)."""
    from iadet.data.voc import read_voc_xml

    path = tmp_path / "a.xml"
    path.write_bytes(b'<?xml version="1.0" encoding="l-atin-1"?><annotation></annotation>')
    with pytest.raises(DataError, match=r"cannot parse annotation .*a.xml: unknown encoding: l-atin-1"):
        read_voc_xml(path)
