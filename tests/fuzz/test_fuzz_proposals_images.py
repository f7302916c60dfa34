"""Fuzzing proposal files (pickle, ``.npz``, ``.mat``) and image headers (truncated or corrupt JPEG,
PNG and other formats Pillow opens, absurd declared sizes).

Each generated file ends in a result (proposal boxes finite and inside the image; an RGB image the
size :func:`~iadet.data.images.image_size` announced) or a one-line
:class:`~iadet.errors.DataError` naming the file (:mod:`fuzz.harness`).
"""

from __future__ import annotations

import io
import itertools
import pickle
import struct
import warnings
import zlib

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from fuzz.harness import fuzz_settings, outcome, scratch_dir, tried
from fuzz.test_fuzz_voc import mutated
from iadet.data.images import image_size, load_image
from iadet.data.proposals import load_proposals
from iadet.data.records import ImageRecord

_DIR = scratch_dir("iadet-fuzz-files-")
_COUNTER = itertools.count()

# ----------------------------------------------------------------------------------------------
# proposals

dtypes = st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "complex64", "U3", "O", "float16"])
leaf = st.one_of(
    st.none(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.binary(max_size=5),
)


@st.composite
def box_array(draw) -> object:
    """A proposal array, or something that is not one (ragged lists, objects, wrong shapes)."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        shape = draw(st.lists(st.integers(0, 5), min_size=1, max_size=3))
        values = draw(
            st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=8)
        )
        size = int(np.prod(shape))
        flat = np.resize(np.asarray(values, np.float64), size)
        dtype = draw(dtypes)
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NaN and huge values cast to integers, complex to real
                return flat.reshape(shape).astype(dtype)
        except (ValueError, OverflowError):
            return flat.reshape(shape)
    if kind == 1:
        rows = draw(st.integers(0, 6))
        return np.asarray(
            draw(st.lists(st.floats(-50, 200), min_size=4 * rows, max_size=4 * rows)), np.float32
        ).reshape(rows, 4)
    if kind == 2:
        return draw(st.lists(st.lists(leaf, max_size=5), max_size=4))  # ragged or not numbers
    return draw(leaf)


ids = st.one_of(
    st.sampled_from(["000000", "1", "a"]), st.integers(-5, 5), st.text(max_size=6), st.binary(max_size=4)
)
mapping = st.dictionaries(ids, box_array(), max_size=4)
detectron = st.fixed_dictionaries(
    {"ids": st.lists(ids, max_size=3), "boxes": st.lists(box_array(), max_size=3)},
    optional={"scores": st.one_of(st.none(), st.lists(box_array(), max_size=3))},
)


@st.composite
def proposal_file(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".pkl", ".pickle", ".npz", ".mat"]))
    content = draw(st.one_of(mapping, detectron, box_array()))
    buffer = io.BytesIO()
    try:
        if suffix == ".npz":
            arrays = {str(k): np.asarray(v) for k, v in content.items()} if isinstance(content, dict) else {}
            np.savez(buffer, **arrays)
        elif suffix == ".mat":
            from scipy.io import savemat

            names = np.empty((len(content) if isinstance(content, dict) else 0,), dtype=object)
            boxes = np.empty_like(names)
            for i, (k, v) in enumerate(content.items() if isinstance(content, dict) else []):
                names[i], boxes[i] = str(k), np.asarray(v, dtype=np.float64)
            savemat(buffer, {"images": names, "boxes": boxes})
        else:
            pickle.dump(content, buffer, protocol=draw(st.integers(0, 5)))
    except Exception:  # content the writer cannot write: fuzz raw bytes instead
        buffer = io.BytesIO(draw(st.binary(max_size=64)))
    data = buffer.getvalue()
    if draw(st.integers(0, 2)) == 0:
        data = draw(mutated(data))
    if draw(st.integers(0, 9)) == 0:  # hostile: a pickle that would run code
        data = b"cos\nsystem\n(S'echo pwned'\ntR."
    return suffix, data


@fuzz_settings(60)
@given(proposal_file())
def test_proposal_file(file: tuple[str, bytes]) -> None:
    tried("proposal_file")
    suffix, data = file
    path = _DIR / f"proposals{next(_COUNTER)}{suffix}"
    path.write_bytes(data)
    try:
        proposals = outcome("proposal_file", lambda: load_proposals(path), [path.name])
        if proposals is None:
            return
        for key in list(proposals.boxes):
            record = ImageRecord(
                key,
                _DIR / "x.jpg",
                64,
                48,
                np.zeros((0, 4), np.float32),
                np.zeros(0, np.int64),
                np.zeros(0, bool),
            )
            boxes = outcome("proposal_file", lambda r=record: proposals.for_record(r), [path.name])
            if boxes is not None:
                assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
                assert np.isfinite(boxes).all()
                assert (boxes[:, 0] >= 0).all() and (boxes[:, 3] <= 48).all()
    finally:
        path.unlink()


# ----------------------------------------------------------------------------------------------
# images


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@st.composite
def image_file(draw) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM"]))
    mode = draw(st.sampled_from(["RGB", "L", "RGBA", "P", "1", "I;16", "CMYK", "LA", "I", "F"]))
    size = (draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    image = Image.new(mode if mode != "I;16" else "I;16", size)
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):
        image.convert("RGB").save(buffer, format=fmt)
    data = buffer.getvalue()
    kind = draw(st.integers(0, 3))
    if kind == 1 and fmt == "PNG":  # an IHDR declaring an absurd size, with a valid CRC
        width, height = draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1))
        header = struct.pack(">II", width, height) + data[24:29]
        data = data[:8] + _png_chunk(b"IHDR", header) + data[33:]
    elif kind == 1 and fmt == "JPEG":  # the SOF0 frame's height and width
        at = data.find(b"\xff\xc0")
        if at > 0:
            dims = struct.pack(">HH", draw(st.integers(0, 65535)), draw(st.integers(0, 65535)))
            data = data[: at + 5] + dims + data[at + 9 :]
    elif kind >= 2:
        data = draw(mutated(data))
    suffix = {"JPEG": ".jpg", "TIFF": ".tif"}.get(fmt, f".{fmt.lower()}")
    return suffix, data


@fuzz_settings(60)
@given(image_file())
def test_image_header_and_decoding(file: tuple[str, bytes]) -> None:
    tried("image_header_and_decoding")
    suffix, data = file
    path = _DIR / f"image{next(_COUNTER)}{suffix}"
    path.write_bytes(data)
    try:
        size = outcome("image_header_and_decoding", lambda: image_size(path), [path.name])
        image = outcome("image_header_and_decoding", lambda: load_image(path), [path.name])
        if image is not None:
            assert image.mode == "RGB"
            if size is not None:
                assert image.size == size, (image.size, size)
    finally:
        path.unlink()
