"""PASCAL VOC layout: ``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``.

Any year works. Coordinates in the XML are 1-based inclusive pixels; like py-faster-rcnn we
subtract 1 on load (and the evaluator adds it back when writing devkit files). Every
annotation is parsed and validated, and every listed image checked, when the split is opened,
so a bad file fails before training starts, with a one-line error naming it. XML is parsed with
``defusedxml`` (no entity expansion, no external entities). Split files and ``classes.txt`` are
UTF-8 with or without a BOM (:mod:`iadet.data.files`); ids must be plain names, and an image that
is a symbolic link out of the dataset is refused unless ``data.follow_symlinks``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from iadet.data.files import inside, plain_name, read_id_lines, read_text
from iadet.data.images import image_size
from iadet.data.records import VOC_CLASSES, DatasetSplit, ImageRecord
from iadet.errors import DataError, closest, reason

_SPLIT_DIR = Path("ImageSets") / "Main"
MAX_SIDE = 2**31 - 1
"""The largest ``<size>`` width or height accepted (PNG's limit; Pillow opens nothing larger)."""


def is_voc_root(root: Path) -> bool:
    return (root / "Annotations").is_dir() and (root / _SPLIT_DIR).is_dir()


def read_classes(root: Path) -> tuple[str, ...] | None:
    """Class names from ``classes.txt`` (one per line) when present."""
    path = root / "classes.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in read_text(path, "class list").splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path}: no class names")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: duplicate class names")
    return tuple(names)


def safe_image_id(image_id: str, source: str) -> str:
    """Refuse ids that would escape the dataset root (``../x``, ``/etc/x``, ``a/b``): :func:`plain_name`."""
    return plain_name(image_id, source)


def read_split(root: Path, split: str) -> list[str]:
    path = root / _SPLIT_DIR / f"{split}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in (root / _SPLIT_DIR).glob("*.txt") if "_" not in p.stem)
        raise DataError(f"{path}: split file not found (available: {', '.join(available) or 'none'})")
    # VOC's per-class lists hold "id 1" / "id -1": the id is the first field
    ids = [image_id for _, image_id in read_id_lines(path)]
    if not ids:
        raise DataError(f"{path}: empty split file")
    return ids


def _text(node, tag: str, xml: Path, what: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DataError(f"{xml}: {what} has no <{tag}>")
    return child.text.strip()


def _number(node, tag: str, xml: Path, what: str) -> float:
    text = _text(node, tag, xml, what)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{xml}: {what} has a bad <{tag}>: {text[:40]!r}")
    return value


def _size(node, tag: str, xml: Path) -> int:
    """A ``<size>`` field: a positive whole number (``0`` is allowed: some tools write it for unknown)."""
    value = _number(node, tag, xml, "<size>")
    if value < 0 or not value.is_integer() or value > MAX_SIDE:
        raise DataError(
            f"{xml}: <size> has a bad <{tag}>: {_text(node, tag, xml, '<size>')[:40]!r} "
            f"(a whole number from 0 to {MAX_SIDE})"
        )
    return int(value)


@dataclass
class VOCObject:
    """One ``<object>`` as written: ``box`` is ``xmin, ymin, xmax, ymax`` in the devkit's 1-based pixels."""

    name: str
    box: tuple[float, float, float, float]
    difficult: bool


def read_voc_xml(xml: Path) -> tuple[Any, list[VOCObject]]:
    """Parse a VOC annotation safely (defusedxml): ``(root element, its objects)``.

    Each ``<object>`` needs a ``<name>`` and a ``<bndbox>`` with finite ``xmin ymin xmax ymax``;
    ``<difficult>`` may be missing (0). Used by the dataset loader and by the devkit evaluation.
    """
    try:
        root = SafeET.parse(str(xml)).getroot()
    except SafeET.ParseError as exc:
        line = getattr(exc, "position", (None,))[0]
        raise DataError(
            f"cannot parse annotation {xml}: malformed XML{f' (line {line})' if line else ''}: "
            f"{exc.msg if hasattr(exc, 'msg') else exc}"
        ) from None
    except DefusedXmlException as exc:
        raise DataError(f"{xml}: refused unsafe XML ({type(exc).__name__})") from None
    except (
        LookupError,
        ValueError,
    ) as exc:  # an unknown encoding in the XML declaration, bytes it cannot decode
        raise DataError(f"cannot parse annotation {xml}: {reason(exc)}") from None
    except OSError as exc:
        raise DataError(f"cannot read annotation {xml}: {exc.strerror or exc}") from None
    objects = []
    for k, obj in enumerate(root.findall("object"), 1):
        name = _text(obj, "name", xml, f"object {k}")
        what = f"object {k} ({name[:40]!r})"
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DataError(f"{xml}: {what} has no <bndbox>")
        box = tuple(_number(bndbox, t, xml, what) for t in ("xmin", "ymin", "xmax", "ymax"))
        text = (obj.findtext("difficult") or "").strip()
        try:
            flag = float(text) if text else 0.0
        except ValueError:
            flag = math.nan
        if flag not in (0.0, 1.0):
            raise DataError(f"{xml}: {what} has a bad <difficult>: {text[:40]!r} (0 or 1)")
        difficult = flag == 1.0
        objects.append(VOCObject(name, box, difficult))
    return root, objects


class _ClipNotice:
    """Warn once per dataset about boxes partly outside their image (they are clipped)."""

    def __init__(self) -> None:
        self.count = 0
        self.first = ""

    def add(self, where: str) -> None:
        if not self.count:
            self.first = where
        self.count += 1

    def emit(self) -> None:
        if self.count:
            warnings.warn(
                f"{self.count} box(es) partly outside their image were clipped (first: {self.first})",
                stacklevel=3,
            )


def parse_annotation(
    xml: Path,
    classes: Sequence[str],
    image_path: Path,
    clip_notice: _ClipNotice | None = None,
    check_image: bool = True,
) -> ImageRecord:
    """Parse and validate one VOC XML file into an :class:`ImageRecord` (0-based boxes)."""
    if not xml.is_file():
        raise DataError(f"{xml}: annotation file not found")
    inside(xml, image_path.parent.parent, "annotation")
    root, objects = read_voc_xml(xml)

    if check_image:
        width, height = image_size(image_path)
    else:
        width = height = 0
    size = root.find("size")
    if size is not None and size.find("width") is not None and size.find("height") is not None:
        w_xml, h_xml = _size(size, "width", xml), _size(size, "height", xml)
        if not check_image:
            width, height = w_xml, h_xml
        elif (w_xml, h_xml) not in ((width, height), (height, width)) and w_xml > 0 and h_xml > 0:
            raise DataError(
                f"{xml}: <size> {w_xml}x{h_xml} differs from the image {image_path.name} ({width}x{height})"
            )
    if width <= 0 or height <= 0:
        raise DataError(f"{xml}: no usable image size")

    index = {name: i + 1 for i, name in enumerate(classes)}
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(objects, 1):
        what, name = f"object {k}", obj.name
        if name not in index:
            raise DataError(f"{xml}: {what} has unknown class {name[:60]!r}{closest(name, classes)}")
        is_difficult = obj.difficult
        x1, y1, x2, y2 = (v - 1 for v in obj.box)
        if x1 > x2 or y1 > y2:
            raise DataError(
                f"{xml}: {what} ({name[:40]!r}) has xmin > xmax or ymin > ymax "
                f"({x1 + 1:g}, {y1 + 1:g}, {x2 + 1:g}, {y2 + 1:g})"
            )
        if x2 < 0 or y2 < 0 or x1 > width - 1 or y1 > height - 1:
            raise DataError(
                f"{xml}: {what} ({name[:40]!r}) lies entirely outside the {width}x{height} image "
                f"({x1 + 1:g}, {y1 + 1:g}, {x2 + 1:g}, {y2 + 1:g})"
            )
        cx1, cy1 = max(x1, 0.0), max(y1, 0.0)
        cx2, cy2 = min(x2, width - 1.0), min(y2, height - 1.0)
        if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2) and clip_notice is not None:
            clip_notice.add(f"{xml.name} {what}")
        boxes.append((cx1, cy1, cx2, cy2))
        labels.append(index[name])
        difficult.append(is_difficult)
    return ImageRecord(
        image_id=xml.stem,
        path=image_path,
        width=width,
        height=height,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int64),
        difficult=np.asarray(difficult, bool),
    )


def find_image(root: Path, image_id: str) -> Path:
    """``JPEGImages/<id>.jpg`` (or .jpeg, .png, .bmp), inside the dataset (:func:`~iadet.data.files.inside`)."""
    jpg = root / "JPEGImages" / f"{image_id}.jpg"
    if jpg.is_file():
        return inside(jpg, root, "image")
    for ext in (".jpeg", ".png", ".JPG", ".PNG", ".bmp"):
        other = root / "JPEGImages" / f"{image_id}{ext}"
        if other.is_file():
            return inside(other, root, "image")
    raise DataError(f"{jpg}: image listed in the split has no file")


def open_voc(
    root: str | Path,
    split: str,
    classes: Sequence[str] | None = None,
    *,
    problems: list[str] | None = None,
) -> DatasetSplit:
    """Open one split of a VOC-layout dataset, validating every annotation and image.

    With ``problems`` given, each bad image is reported into the list and skipped instead of
    raising (``iadet data check``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found")
    if not is_voc_root(root):
        raise DataError(f"{root}: not a VOC-layout dataset (expected Annotations/ and ImageSets/Main/)")
    classes = tuple(classes) if classes else (read_classes(root) or VOC_CLASSES)
    notice = _ClipNotice()
    records = []
    seen = set()
    for image_id in read_split(root, split):
        if image_id in seen:
            continue
        seen.add(image_id)
        try:
            image_path = find_image(root, image_id)
            records.append(
                parse_annotation(root / "Annotations" / f"{image_id}.xml", classes, image_path, notice)
            )
        except DataError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
    notice.emit()
    return DatasetSplit(name=split, root=root, classes=classes, records=records, format="voc")
