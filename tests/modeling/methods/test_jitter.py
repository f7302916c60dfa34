"""jitter: scale and aspect-ratio jitter of proposals before matching, rotation of the pooled RoIs."""

from __future__ import annotations

import math

import torch

from iadet.config.schema import ModelConfig
from iadet.modeling.detector import build_model
from iadet.modeling.methods import build_method
from iadet.modeling.methods.base import RoIBatch
from iadet.modeling.methods.jitter import jitter_boxes


def test_boxes_keep_their_centre_and_stay_within_the_bounds():
    torch.manual_seed(0)
    boxes = torch.tensor([[100.0, 100.0, 140.0, 180.0]]).repeat(500, 1)
    boxes = torch.cat([boxes, torch.tensor([[0.0, 0.0, 400.0, 300.0]])])  # the proposals' extent
    out = jitter_boxes(boxes, scale=0.2, aspect=0.3)[:500]
    assert torch.allclose((out[:, 0] + out[:, 2]) / 2, torch.full((500,), 120.0), atol=1e-4)
    assert torch.allclose((out[:, 1] + out[:, 3]) / 2, torch.full((500,), 140.0), atol=1e-4)
    w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
    area = (w * h).sqrt() / math.sqrt(40 * 80)  # the scale factor
    ratio = (w / h) / (40 / 80)  # the aspect factor
    assert area.min() >= 1 / 1.2 - 1e-4 and area.max() <= 1.2 + 1e-4
    assert ratio.min() >= 1 / 1.3 - 1e-4 and ratio.max() <= 1.3 + 1e-4
    assert area.std() > 0.02 and ratio.std() > 0.02
    edge = jitter_boxes(torch.tensor([[0.0, 0.0, 50.0, 60.0]]), scale=0.5, aspect=0.0)
    assert edge.min() >= 0 and edge[0, 2] <= 50 and edge[0, 3] <= 60  # clipped to the extent


def test_labels_follow_the_jittered_boxes_and_pooled_rois_are_rotated():
    torch.manual_seed(0)
    method = build_method({"name": "jitter", "scale": 0.5, "aspect": 0.5, "rotation": 10.0})
    model = build_model(
        ModelConfig(backbone="tiny", min_size=64, max_size=96, box_batch_size_per_image=16), 3, method
    )
    heads = model.roi_heads
    proposals = [torch.tensor([[10.0, 10.0, 40.0, 40.0]]).repeat(64, 1)]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 40.0, 40.0]]), "labels": torch.tensor([1])}]
    boxes, _, labels, _ = heads.select_training_samples(method.transform_proposals(proposals), targets)
    boxes, labels = boxes[0], labels[0]
    moved = ~(boxes == torch.tensor([10.0, 10.0, 40.0, 40.0])).all(1)
    assert (
        len(boxes) >= 4 and moved.sum() >= len(boxes) - 1
    )  # jittered (the appended ground-truth box is not)
    from torchvision.ops import box_iou

    iou = box_iou(boxes, targets[0]["boxes"])[:, 0]
    assert torch.equal(labels > 0, iou >= 0.5)  # matched after the jitter

    features = torch.rand(4, 3, 7, 7)
    batch = RoIBatch(
        torch.zeros(4, dtype=torch.int64),
        [torch.zeros(4, 4)],
        torch.zeros(4, 4),
        torch.zeros(4, dtype=torch.int64),
        [(64, 64)],
    )
    out = method(features, batch)
    assert out.features.shape == features.shape and not torch.allclose(out.features, features)
    assert 0 < out.stats["jitter_abs_angle"] <= 10.0
