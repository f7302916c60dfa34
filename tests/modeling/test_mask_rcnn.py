"""Mask R-CNN with a method on the box branch (the IA paper's Table 6) on VOC-style instance masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iadet.cli import main
from iadet.data.dataset import DetectionDataset
from iadet.data.masks import voc_instance_masks
from iadet.data.voc import open_voc
from iadet.engine.checkpoint import load_file
from iadet.errors import DataError

from conftest import make_voc, read_jsonl, tiny_overrides


def write_instance_masks(root: Path) -> None:
    """SegmentationObject/<id>.png as VOC and the built-in data store them: pixel = 1-based object index
    in XML order, 0 background, 255 void (a 1-pixel border around each object, as VOC draws it)."""
    (root / "SegmentationObject").mkdir(exist_ok=True)
    for split in ("trainval", "test"):
        for r in open_voc(root, split).records:
            index = np.zeros((r.height, r.width), np.uint8)
            for k, (x1, y1, x2, y2) in enumerate(r.boxes.astype(int), 1):
                index[max(y1 - 1, 0) : y2 + 2, max(x1 - 1, 0) : x2 + 2] = 255
                # an ellipse inside the box, so a mask is not just its box
                yy, xx = np.mgrid[y1 : y2 + 1, x1 : x2 + 1]
                cy, cx, ry, rx = (y1 + y2) / 2, (x1 + x2) / 2, (y2 - y1 + 1) / 2, (x2 - x1 + 1) / 2
                inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
                index[y1 : y2 + 1, x1 : x2 + 1] = np.where(inside, k, 0)
            Image.fromarray(index).save(root / "SegmentationObject" / f"{r.image_id}.png")


@pytest.fixture(scope="module")
def masked_voc(tmp_path_factory) -> Path:
    root = make_voc(tmp_path_factory.mktemp("masks") / "voc", n_train=8, n_test=4)
    write_instance_masks(root)
    return root


def test_masks_match_their_boxes_and_flip_with_them(masked_voc: Path):
    split = open_voc(masked_voc, "trainval")
    dataset = DetectionDataset(split.records, train=True, mask_loader=voc_instance_masks)
    for flip in (False, True):
        image, target = dataset[(1, flip)]
        masks, boxes = target["masks"], target["boxes"]
        assert masks.shape == (len(boxes), *image.shape[1:]) and masks.dtype == torch.uint8
        for mask, box in zip(masks, boxes):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            # the ellipse spans the box (the dataset's boxes are 0-based, x2 exclusive after +1 on flip)
            assert abs(xs.min().item() - box[0].item()) <= 1 and abs(xs.max().item() - box[2].item()) <= 1
            assert abs(ys.min().item() - box[1].item()) <= 1 and abs(ys.max().item() - box[3].item()) <= 1


def test_missing_instance_masks_are_a_data_error(voc_root: Path):
    split = open_voc(voc_root, "trainval")
    dataset = DetectionDataset(split.records, train=True, mask_loader=voc_instance_masks)
    with pytest.raises(DataError, match="SegmentationObject"):
        dataset[0]


@pytest.mark.slow
def test_mask_rcnn_trains_with_ia_on_the_box_branch(masked_voc: Path, tmp_path: Path):
    out = tmp_path / "run"
    args = ["train", "--config", "quick", "--output", str(out), "--quiet"]
    extra = [
        "model.detector=mask_rcnn",
        "method.name=ia",
        "model.box_detections_per_img=20",
        "eval.max_images=2",
    ]
    for o in [*tiny_overrides(masked_voc, 3), *extra]:
        args += ["--set", o]
    assert main(args) == 0
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "train"]
    assert len(rows) == 3
    assert all(np.isfinite(r["loss_mask"]) and r["loss_mask"] > 0 for r in rows)
    assert all(r["ia_masked_fraction"] > 0 for r in rows)
    state = load_file(out / "model_final.pth")
    assert any(k.startswith("roi_heads.mask_predictor.") for k in state)
    assert (out / "eval.json").is_file()
