"""Instance masks for Mask R-CNN: VOC ``SegmentationObject/*.png`` or COCO polygons / RLE.

A loader maps ``(record, keep)`` to ``(K, H, W)`` uint8 masks of the kept objects, in the
record's object order. VOC instance PNGs hold the 1-based object index per pixel (0
background, 255 void), which is how VOC's SegmentationObject images and the built-in data
store them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from iadet.data.images import open_checked
from iadet.data.records import DatasetSplit, ImageRecord
from iadet.errors import DataError

MaskLoader = Callable[[ImageRecord, np.ndarray], np.ndarray]


def voc_instance_masks(record: ImageRecord, keep: np.ndarray) -> np.ndarray:
    path = record.path.parent.parent / "SegmentationObject" / f"{record.image_id}.png"
    if not path.is_file():
        raise DataError(f"{path}: instance mask missing (model.detector=mask_rcnn needs SegmentationObject/)")
    try:
        with open_checked(path) as im:
            index = np.asarray(im)
    except OSError as exc:
        raise DataError(f"{path}: cannot read instance mask ({exc})") from None
    if index.shape[:2] != (record.height, record.width):
        raise DataError(f"{path}: mask size {index.shape[1]}x{index.shape[0]} differs from the image's")
    objects = np.nonzero(keep)[0] + 1
    return (index[None, :, :] == objects[:, None, None]).astype(np.uint8)


def coco_instance_masks(record: ImageRecord, keep: np.ndarray) -> np.ndarray:
    from pycocotools import mask as mask_utils

    anns = [
        a
        for a in record.extra.get("annotations", [])
        if a.get("bbox") and a["bbox"][2] > 0 and a["bbox"][3] > 0
    ]
    masks = []
    for ann in anns:
        seg = ann.get("segmentation")
        if not seg:
            raise DataError(f"image {record.image_id}: annotation {ann.get('id')} has no segmentation")
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, record.height, record.width))
        elif isinstance(seg.get("counts"), list):
            rle = mask_utils.frPyObjects(seg, record.height, record.width)
        else:
            rle = seg
        masks.append(mask_utils.decode(rle))
    stacked = np.stack(masks) if masks else np.zeros((0, record.height, record.width), np.uint8)
    if len(stacked) != len(keep):
        raise DataError(f"image {record.image_id}: {len(stacked)} masks for {len(keep)} objects")
    return stacked[keep].astype(np.uint8)


def mask_loader_for(split: DatasetSplit) -> MaskLoader:
    return coco_instance_masks if split.format == "coco" else voc_instance_masks
