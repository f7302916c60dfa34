"""Precomputed object proposals for Fast R-CNN (``data.proposals``), and selective search to make them.

A proposal file maps each image id (a string: the VOC file stem, the COCO image id) to a
``(K, 4)`` float array of ``xmin, ymin, xmax, ymax`` boxes in 0-based pixel coordinates of the
original image, best first. Read by suffix:

* ``.pkl`` / ``.pickle`` — ``{image_id: array}``, or Detectron's ``{"ids": [...], "boxes": [...],
  "scores": [...]}`` (each image's boxes sorted by descending score). Python 2 pickles work.
  Only plain containers and NumPy arrays are unpickled: a pickle naming any other class is
  refused, so a proposal file cannot run code.
* ``.npz`` — one array per image id (``numpy.savez``; read without pickle).
* ``.mat`` — Fast R-CNN's selective-search files (``selective_search_data/voc_2007_trainval.mat``:
  ``images`` and ``boxes`` cells, 1-based ``y1, x1, y2, x2``), converted as py-faster-rcnn does.

:func:`selective_search` computes proposals with OpenCV's implementation of Uijlings et al.
(IJCV 2013), the proposals Fast R-CNN and A-Fast-RCNN train with on VOC.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import os
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from iadet.data.records import ImageRecord
from iadet.errors import DataError, reason
from iadet.serialization import MAX_PICKLE_BYTES, UnsafePickle, check_pickle

SUFFIXES = (".pkl", ".pickle", ".npz", ".mat")


class Proposals:
    """Proposal boxes by image id. ``proposals.for_record(record)`` gives the boxes a detector gets."""

    def __init__(self, boxes: Mapping[Any, np.ndarray], source: str = "proposals") -> None:
        self.source = source
        self.boxes: dict[str, np.ndarray] = {}
        for image_id, array in boxes.items():
            key = _id_string(image_id)
            shown = repr(key[:80])
            try:
                array = np.asarray(array)
            except (ValueError, TypeError):  # ragged lists
                raise DataError(
                    f"{source}: proposals of image {shown} must be a (K, 4) array of numbers, got ragged lists"
                ) from None
            real = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
            if array.ndim != 2 or array.shape[1] != 4 or (array.size and not real):
                raise DataError(
                    f"{source}: proposals of image {shown} must be a (K, 4) array of real numbers, "
                    f"got shape {array.shape} of {array.dtype}"
                )
            self.boxes[key] = array.astype(np.float32, copy=False)

    def __len__(self) -> int:
        return len(self.boxes)

    def __contains__(self, image_id: object) -> bool:
        return _id_string(image_id) in self.boxes

    def __getitem__(self, image_id: object) -> np.ndarray:
        key = _id_string(image_id)
        try:
            return self.boxes[key]
        except KeyError:
            raise DataError(f"{self.source}: no proposals for image {key[:80]!r}") from None

    def for_record(self, record: ImageRecord) -> np.ndarray:
        """The proposals of ``record``, ready for a detector: ``(K', 4)`` float32, file order kept.

        Boxes are clipped to the image, given at least one pixel of width and height (as the
        dataset does for ground truth: ``x2 >= x1 + 1``), non-finite ones dropped, exact
        duplicates dropped.
        """
        boxes = self[record.image_id]
        if not len(boxes):
            return np.zeros((0, 4), np.float32)
        boxes = boxes[np.isfinite(boxes).all(axis=1)]
        boxes = boxes[(boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])]
        w, h = float(record.width - 1), float(record.height - 1)
        boxes = np.clip(boxes, 0.0, [w, h, w, h]).astype(np.float32)
        boxes[:, 2] = np.maximum(boxes[:, 2], boxes[:, 0] + 1.0)
        boxes[:, 3] = np.maximum(boxes[:, 3], boxes[:, 1] + 1.0)
        _, first = np.unique(boxes, axis=0, return_index=True)
        return boxes[np.sort(first)]

    def check(self, records: Iterable[ImageRecord], split: str) -> None:
        """Fail before training or evaluation when an image of ``split`` has no proposals."""
        missing = [r.image_id for r in records if r.image_id not in self.boxes]
        if missing:
            more = f" (and {len(missing) - 1} more of its images)" if len(missing) > 1 else ""
            raise DataError(
                f"{self.source}: no proposals for image '{missing[0]}' of split {split}{more}; "
                "compute them with `iadet proposals`"
            )


def _id_string(image_id: object) -> str:
    if isinstance(image_id, bytes):
        return image_id.decode("utf-8", errors="replace")
    if isinstance(image_id, (np.integer, np.str_)):
        return str(image_id.item())
    return str(image_id)


# ----------------------------------------------------------------------------------------------
# reading and writing


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, tuples, strings, numbers and NumPy arrays, and nothing else."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> Any:
    if path.stat().st_size > 4 * MAX_PICKLE_BYTES:
        raise DataError(f"{path}: proposal pickle larger than {4 * MAX_PICKLE_BYTES >> 20} MiB (refused)")
    data = path.read_bytes()
    try:  # before unpickling: lists that reuse one another would be huge once walked
        check_pickle(io.BytesIO(data), max_bytes=4 * MAX_PICKLE_BYTES)
    except UnsafePickle as exc:
        raise DataError(f"{path}: not a proposal pickle ({exc}; refused)") from None
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: not a proposal pickle ({exc})") from None
    except (EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise DataError(f"{path}: unreadable pickle ({type(exc).__name__}: {exc})") from None


def _from_detectron(data: Mapping[str, Any], path: Path) -> dict[str, np.ndarray]:
    """Detectron's ``{"ids", "boxes", "scores"}``: boxes sorted by descending score per image."""
    try:
        return _detectron_boxes(data, path)
    except (ValueError, TypeError, IndexError) as exc:  # lists that are not lists, ragged or not numbers
        raise DataError(
            f"{path}: not Detectron's layout ('ids', 'boxes', 'scores' lists of equal length: {reason(exc)})"
        ) from None


def _detectron_boxes(data: Mapping[str, Any], path: Path) -> dict[str, np.ndarray]:
    ids, boxes = list(data["ids"]), list(data["boxes"])
    scores = list(data["scores"]) if data.get("scores") is not None else [None] * len(ids)
    if not len(ids) == len(boxes) == len(scores):
        raise DataError(f"{path}: 'ids', 'boxes' and 'scores' have different lengths")
    out = {}
    for image_id, box, score in zip(ids, boxes, scores):
        box = np.asarray(box)
        if score is not None and len(box):
            order = np.argsort(-np.asarray(score, dtype=np.float64).reshape(-1), kind="stable")
            if len(order) != len(box):
                raise DataError(
                    f"{path}: image '{_id_string(image_id)}' has {len(box)} boxes and {len(order)} scores"
                )
            box = box[order]
        out[_id_string(image_id)] = box
    return out


def _read_mat(path: Path) -> dict[str, np.ndarray]:
    """Fast R-CNN's MATLAB files: 1-based ``y1, x1, y2, x2`` -> 0-based ``x1, y1, x2, y2``."""
    from scipy.io import loadmat

    try:
        data = loadmat(str(path))
    except Exception as exc:  # scipy on a corrupt file: ValueError, IndexError, TypeError, EOFError, ...
        raise DataError(f"{path}: unreadable .mat file ({reason(exc)})") from None
    if "images" not in data or "boxes" not in data:
        raise DataError(f"{path}: a .mat proposal file needs 'images' and 'boxes' (Fast R-CNN's layout)")
    images, boxes = data["images"].ravel(), data["boxes"].ravel()
    if len(images) != len(boxes):
        raise DataError(f"{path}: {len(images)} images but {len(boxes)} box arrays")
    out = {}
    for name, box in zip(images, boxes):
        key = str(np.asarray(name).ravel()[0]) if np.asarray(name).size else ""
        try:
            box = np.asarray(box, dtype=np.float64)
        except (ValueError, TypeError):
            box = None
        if box is None or box.size % 4:
            raise DataError(f"{path}: the boxes of image {key[:80]!r} are not rows of 4 numbers")
        box = box.reshape(-1, 4)
        out[key] = box[:, (1, 0, 3, 2)] - 1.0
    return out


def load_proposals(path: str | Path) -> Proposals:
    """Read a proposal file (``.pkl``/``.pickle``, ``.npz`` or ``.mat``; see the module docstring)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"proposal file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                boxes = {key: data[key] for key in data.files}
        except Exception as exc:  # a corrupt archive: ValueError, BadZipFile, EOFError, zlib.error, ...
            raise DataError(f"{path}: unreadable .npz ({reason(exc)})") from None
    elif suffix == ".mat":
        boxes = _read_mat(path)
    elif suffix in (".pkl", ".pickle"):
        data = _read_pickle(path)
        if isinstance(data, Mapping) and "ids" in data and "boxes" in data:
            boxes = _from_detectron(data, path)
        elif isinstance(data, Mapping):
            boxes = dict(data)
        else:
            raise DataError(f"{path}: expected a dict of image id -> (K, 4) boxes, got {type(data).__name__}")
    else:
        raise DataError(f"{path}: unknown proposal file type '{suffix}' (expected {', '.join(SUFFIXES)})")
    return Proposals(boxes, source=str(path))


def save_proposals(proposals: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Write ``{image_id: (K, 4) boxes}`` as ``.npz`` or pickle (by suffix), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".pkl", ".pickle"):
        raise DataError(f"{path}: proposals are written as .npz or .pkl")
    arrays = {str(k): np.asarray(v, dtype=np.float32).reshape(-1, 4) for k, v in proposals.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        if suffix == ".npz":
            np.savez_compressed(f, **arrays)
        else:
            pickle.dump(arrays, f, protocol=4)
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------------
# selective search


def _seed_c_rand(seed: int) -> None:
    """OpenCV ranks selective-search regions by hierarchy level times C's ``rand()`` (Uijlings et al.'s
    "combining locations"), so the order depends on what ran before. Seeding ``rand``
    before each image makes the order a function of the image alone (best effort: where the C
    library cannot be reached, the set of boxes is still deterministic but their order may vary)."""
    try:
        libc = ctypes.CDLL(None) if os.name == "posix" else ctypes.CDLL(ctypes.util.find_library("c"))
        libc.srand(ctypes.c_uint(seed))
    except (OSError, AttributeError, TypeError):
        pass


def selective_search(
    image: np.ndarray, *, mode: str = "fast", max_proposals: int = 2000, min_size: int = 2, seed: int = 0
) -> np.ndarray:
    """Selective-search proposals of one image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mode: ``fast`` (Fast R-CNN's setting, ~2000 boxes on a VOC image) or ``quality``.
        max_proposals: keep the best ``max_proposals`` boxes (OpenCV's ranking).
        min_size: drop boxes narrower or shorter than this many pixels (py-faster-rcnn: 2).
        seed: seeds the ranking's random factor (see :func:`_seed_c_rand`).

    Returns:
        ``(K, 4)`` float32 ``x1, y1, x2, y2``, 0-based inclusive pixels, best first, no duplicates.
    """
    try:
        import cv2

        segmentation = cv2.ximgproc.segmentation
    except (ImportError, AttributeError):
        raise DataError(
            "selective search needs OpenCV's contrib modules: pip install opencv-contrib-python-headless"
        ) from None
    if mode not in ("fast", "quality"):
        raise DataError(f"unknown selective-search mode '{mode}' (valid: fast, quality)")
    search = segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(np.ascontiguousarray(image[:, :, ::-1]))  # OpenCV wants BGR
    if mode == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    _seed_c_rand(seed)
    rects = np.asarray(search.process(), dtype=np.float32).reshape(-1, 4)  # x, y, w, h
    rects = rects[(rects[:, 2] >= min_size) & (rects[:, 3] >= min_size)]
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:] - 1.0], axis=1)
    _, first = np.unique(boxes, axis=0, return_index=True)
    return boxes[np.sort(first)][:max_proposals].astype(np.float32)
