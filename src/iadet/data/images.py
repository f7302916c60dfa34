"""Reading images robustly: any mode Pillow reads becomes 8-bit RGB, EXIF orientation applied.

Grayscale (``L``, ``1``), palette (``P``), ``RGBA``/``LA`` (alpha composited on black, the way
VOC-style tools drop it), 16-bit PNG (``I;16``/``I``, scaled to 8 bit), ``CMYK`` JPEG and
EXIF-rotated photos all come out as an upright ``H x W x 3`` RGB image. A missing, truncated or
non-image file is a :class:`~iadet.errors.DataError` naming the file, and so is one whose header
declares more than ``data.max_image_pixels`` (:data:`iadet.data.files.LIMITS`): the size is
checked after Pillow reads the header and before anything is decoded (a decompression bomb).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from iadet.data.files import LIMITS
from iadet.errors import DataError, reason

# EXIF orientations 5-8 swap width and height
_TRANSPOSED = {5, 6, 7, 8}


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _check_pixels(path: Path, image: Image.Image) -> None:
    width, height = image.size
    if width * height > LIMITS.max_image_pixels:
        raise DataError(
            f"{path}: image declares {width}x{height} = {width * height / 1e6:.1f} megapixels, more than "
            f"data.max_image_pixels={LIMITS.max_image_pixels} (refused before decoding)"
        )


@contextlib.contextmanager
def open_checked(path: Path) -> Iterator[Image.Image]:
    """``Image.open(path)`` (the header only), refusing an image larger than the pixel limit.

    Pillow's own decompression-bomb guard (a warning, then an error at twice its limit) gives way
    to ours: its error becomes the same one-line refusal naming the file.
    """
    if Image.MAX_IMAGE_PIXELS is not None and LIMITS.max_image_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = LIMITS.max_image_pixels  # a limit raised on purpose: Pillow's follows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as exc:
            found = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else "too many pixels"
            raise DataError(
                f"{path}: image declares {size}, more than data.max_image_pixels={LIMITS.max_image_pixels} "
                "(refused before decoding)"
            ) from None
        with image:
            _check_pixels(path, image)
            yield image


def load_image(path: str | Path) -> Image.Image:
    """Decode ``path`` fully into an upright 8-bit RGB Pillow image."""
    path = Path(path)
    try:
        with open_checked(path) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
            return to_rgb(image)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file (or an unsupported format)") from None
    except Exception as exc:  # Pillow's decoders on a corrupt file: OSError, SyntaxError, ValueError, ...
        raise DataError(f"{path}: cannot read image ({reason(exc)})") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` as :func:`load_image` will return it, reading only the header."""
    path = Path(path)
    try:
        with open_checked(path) as image:
            width, height = image.size
            try:
                orientation = image.getexif().get(0x0112, 1)
            except Exception:  # a broken EXIF block does not make the image unreadable
                orientation = 1
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file (or an unsupported format)") from None
    except Exception as exc:  # a corrupt header: Pillow raises OSError, SyntaxError, ValueError, ...
        raise DataError(f"{path}: cannot read image ({reason(exc)})") from None
    return (height, width) if orientation in _TRANSPOSED else (width, height)


def verify_image(path: str | Path) -> None:
    """Decode the whole file (catches truncation, which a header read does not)."""
    load_image(path)
