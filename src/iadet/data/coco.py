"""COCO instances JSON: ``annotations/instances_<split>.json`` with images under ``<split>/``.

Classes are the JSON's categories in id order (label ``i + 1`` for the i-th); crowd boxes
(``iscrowd=1``) are kept as ``difficult`` so training leaves them out and evaluation ignores
them, as COCO does. Missing keys, unknown category ids, entries that are not objects, numbers
of the wrong type or not finite, and boxes of non-positive size are errors naming the file, the
entry and the field; image file names that would escape the image directory (or symbolic links
leading out of the dataset) are refused.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iadet.data.files import inside, plain_name, read_text
from iadet.data.records import DatasetSplit, ImageRecord
from iadet.errors import DataError


def is_coco_root(root: Path) -> bool:
    return (root / "annotations").is_dir() and any((root / "annotations").glob("instances_*.json"))


def coco_paths(root: Path, split: str) -> tuple[Path, Path]:
    """``(annotation json, image directory)`` for ``split`` (e.g. ``train2017``)."""
    ann = root / "annotations" / f"instances_{split}.json"
    if not ann.is_file():
        available = sorted(
            p.stem.removeprefix("instances_") for p in (root / "annotations").glob("instances_*.json")
        )
        raise DataError(
            f"{ann}: annotation file not found (available splits: {', '.join(available) or 'none'})"
        )
    return ann, root / split


def load_coco_json(path: Path) -> dict[str, Any]:
    text = read_text(path, "annotation file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise DataError(f"{path}: missing key '{key}'")
        if not isinstance(data[key], list):
            raise DataError(f"{path}: '{key}' must be a list")
    return data


def _require(entry: Any, keys: Sequence[str], path: Path, what: str) -> None:
    if not isinstance(entry, dict):
        raise DataError(f"{path}: {what} must be a JSON object, got {type(entry).__name__}")
    for key in keys:
        if key not in entry:
            raise DataError(f"{path}: {what} is missing key '{key}'")


def _finite(value: Any) -> bool:
    """A JSON number that is finite as a float: booleans, strings, NaN, infinities and integers beyond
    float range (``1e400`` written out, which ``math.isfinite`` cannot even convert) are not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _shown(value: Any, limit: int = 40) -> str:
    """``value`` as JSON, cut to ``limit`` characters (an id or a value quoted in a message)."""
    try:
        text = json.dumps(value)
    except ValueError:  # an integer too long to print
        text = f"<a {type(value).__name__} too long to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(entry: dict, key: str, path: Path, what: str, *, integer: bool = False) -> float:
    """``entry[key]`` as a finite number (a whole one with ``integer``); booleans and strings refused."""
    value = entry[key]
    ok = _finite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok:
        kind = "a whole number" if integer else "a finite number"
        raise DataError(f"{path}: {what} field '{key}' must be {kind}, got {_shown(value)}")
    return value


def _id(entry: dict, key: str, path: Path, what: str) -> int | str:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"{path}: {what} field '{key}' must be an integer or a string, got {_shown(value)}")
    return value


def _safe_file_name(name: Any, path: Path, what: str) -> str:
    if not isinstance(name, str):
        raise DataError(f"{path}: {what} field 'file_name' must be a string, got {_shown(name)}")
    return plain_name(name, str(path), f"{what} file_name", subdirs=True)


def open_coco(
    root: str | Path, split: str, classes: Sequence[str] | None = None, *, problems: list[str] | None = None
) -> DatasetSplit:
    """Open one split of a COCO-layout dataset as :class:`ImageRecord` objects."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found")
    ann_path, image_dir = coco_paths(root, split)
    data = load_coco_json(ann_path)

    categories = []
    for k, cat in enumerate(data["categories"]):
        _require(cat, ("id", "name"), ann_path, f"category {k}")
        _id(cat, "id", ann_path, f"category {k}")
        if not isinstance(cat["name"], str) or not cat["name"]:
            raise DataError(f"{ann_path}: category {k} field 'name' must be a non-empty string")
        categories.append(cat)
    if len({c["id"] for c in categories}) != len(categories):
        raise DataError(f"{ann_path}: two categories share an id")
    if len({c["name"] for c in categories}) != len(categories):
        raise DataError(f"{ann_path}: two categories share a name (each name is one class)")
    categories.sort(key=lambda c: (isinstance(c["id"], str), c["id"]))  # integer ids first, then strings
    names = tuple(str(c["name"]) for c in categories)
    if classes and tuple(classes) != names:
        missing = [c for c in classes if c not in names]
        if missing:
            raise DataError(f"{ann_path}: class(es) not among the categories: {', '.join(missing)}")
    classes = tuple(classes) if classes else names
    label_of = {c["id"]: classes.index(c["name"]) + 1 for c in categories if c["name"] in classes}
    category_ids = {classes.index(c["name"]) + 1: c["id"] for c in categories if c["name"] in classes}

    images = {}
    for k, img in enumerate(data["images"]):
        what = f"image {_shown(img.get('id', k)) if isinstance(img, dict) else k}"
        _require(img, ("id", "file_name", "width", "height"), ann_path, what)
        _id(img, "id", ann_path, what)
        for key in ("width", "height"):
            if _number(img, key, ann_path, what, integer=True) <= 0:
                raise DataError(f"{ann_path}: {what} field '{key}' must be positive, got {img[key]}")
        images[img["id"]] = img

    per_image: dict[Any, list[dict]] = defaultdict(list)
    for k, ann in enumerate(data["annotations"]):
        what = f"annotation {_shown(ann.get('id', k)) if isinstance(ann, dict) else k}"
        try:
            _require(ann, ("image_id", "category_id", "bbox"), ann_path, what)
            _id(ann, "image_id", ann_path, what)
            _id(ann, "category_id", ann_path, what)
            if ann["image_id"] not in images:
                raise DataError(
                    f"{ann_path}: {what} refers to image id {_shown(ann['image_id'])} that does not exist"
                )
            if ann["category_id"] not in {c["id"] for c in categories}:
                raise DataError(
                    f"{ann_path}: {what} has category id {_shown(ann['category_id'])} that does not exist"
                )
            bbox = ann["bbox"]
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(_finite(v) for v in bbox)):
                raise DataError(
                    f"{ann_path}: {what} field 'bbox' must be [x, y, width, height] of finite numbers, "
                    f"got {_shown(bbox, 80)}"
                )
            if ann.get("iscrowd", 0) not in (0, 1):
                raise DataError(
                    f"{ann_path}: {what} field 'iscrowd' must be 0 or 1, got {_shown(ann['iscrowd'])}"
                )
        except DataError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            continue
        per_image[ann["image_id"]].append(ann)

    records = []
    for image_id, img in images.items():
        what = f"image {_shown(image_id)}"
        try:
            file_name = _safe_file_name(img["file_name"], ann_path, what)
            path = image_dir / file_name
            if not path.is_file():
                raise DataError(f"{path}: image listed in {ann_path.name} has no file")
            inside(path, root, "image")
            width, height = int(img["width"]), int(img["height"])
            boxes, labels, crowd = [], [], []
            for ann in per_image.get(image_id, []):
                if ann["category_id"] not in label_of:
                    continue
                x, y, w, h = (float(v) for v in ann["bbox"])
                if w <= 0 or h <= 0:
                    continue  # COCO holds a few degenerate boxes; torchvision's reference drops them too
                x1, y1 = max(x, 0.0), max(y, 0.0)
                x2, y2 = min(x + w, float(width)), min(y + h, float(height))
                if x2 <= x1 or y2 <= y1:
                    raise DataError(
                        f"{ann_path}: annotation {_shown(ann.get('id'))} lies outside its {width}x{height} image"
                    )
                box32 = np.asarray((x1, y1, x2, y2), np.float32)
                if box32[2] <= box32[0] or box32[3] <= box32[1]:
                    continue  # narrower than float32 can tell from a point (1e-300): degenerate as well
                boxes.append((x1, y1, x2, y2))
                labels.append(label_of[ann["category_id"]])
                crowd.append(bool(ann.get("iscrowd", 0)))
        except DataError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            continue
        records.append(
            ImageRecord(
                image_id=str(image_id),
                path=path,
                width=width,
                height=height,
                boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                labels=np.asarray(labels, np.int64),
                difficult=np.asarray(crowd, bool),
                extra={"coco_id": image_id, "annotations": per_image.get(image_id, [])},
            )
        )
    if not records and problems is None:
        raise DataError(f"{ann_path}: no images")
    return DatasetSplit(
        name=split,
        root=root,
        classes=classes,
        records=records,
        format="coco",
        extra={"annotation_file": str(ann_path), "category_ids": category_ids},
    )
