from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iadet.data.images import image_size, load_image
from iadet.errors import DataError


def _pattern(h=20, w=30):
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2, 0] = 200
    a[: h // 2, :, 1] = 100
    return a


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "1"])
def test_modes_become_rgb(tmp_path: Path, mode: str):
    source = Image.fromarray(_pattern()).convert(mode)
    path = tmp_path / ("x.jpg" if mode in ("CMYK",) else "x.png")
    source.save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (30, 20)


def test_cmyk_jpeg_keeps_colours(tmp_path: Path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(_pattern()).convert("CMYK").save(path, quality=100)
    array = np.asarray(load_image(path)).astype(int)
    assert array[15, 5, 0] > 150 and array[15, 25, 0] < 60  # red half stays red


def test_16_bit_png_is_scaled(tmp_path: Path):
    path = tmp_path / "deep.png"
    data = np.full((10, 12), 65535, np.uint16)
    data[:, :6] = 0
    Image.fromarray(data).save(path)
    array = np.asarray(load_image(path))
    assert array.shape == (10, 12, 3)
    assert array[0, 0, 0] == 0 and array[0, 11, 0] == 255


def test_exif_rotation_is_applied(tmp_path: Path):
    path = tmp_path / "rotated.jpg"
    image = Image.fromarray(_pattern(20, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    image.save(path, exif=exif)
    assert load_image(path).size == (20, 30)
    assert image_size(path) == (20, 30)


def test_truncated_and_non_image_files(tmp_path: Path):
    good = tmp_path / "good.jpg"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(good)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(DataError, match=r"cut.jpg: cannot read image"):
        load_image(cut)
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(DataError, match=r"notes.jpg: not an image file"):
        load_image(text)
    with pytest.raises(DataError, match=r"missing.jpg: image file not found"):
        load_image(tmp_path / "missing.jpg")
