"""OHEM: every proposal matched, a read-only loss for each, the hardest after NMS trained."""

from __future__ import annotations

import pytest
import torch

from iadet.config.schema import ModelConfig
from iadet.modeling.detector import build_model
from iadet.modeling.methods import build_method
from iadet.modeling.methods.ohem import hardest_after_nms, roi_losses

TINY = ModelConfig(backbone="tiny", min_size=64, max_size=96, box_batch_size_per_image=8)


def test_matching_every_proposal_keeps_them_all_and_the_ground_truth():
    model = build_model(TINY, 3)
    proposals = [
        torch.tensor([[0.0, 0.0, 20.0, 20.0], [30.0, 30.0, 60.0, 60.0], [0.0, 0.0, 19.0, 21.0]]),
        torch.zeros((0, 4)),
    ]
    targets = [
        {"boxes": torch.tensor([[0.0, 0.0, 20.0, 20.0]]), "labels": torch.tensor([2])},
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)},  # no objects
    ]
    boxes, matched, labels, regression = model.roi_heads.match_every_proposal(proposals, targets)
    assert [len(b) for b in boxes] == [4, 0]
    assert labels[0].tolist() == [2, 0, 2, 2]
    assert regression[0].shape == (4, 4) and torch.allclose(regression[0][0], torch.zeros(4), atol=1e-6)


def test_hardest_after_nms_keeps_the_top_losses_of_each_image_without_overlaps():
    boxes = [
        torch.tensor(
            [
                [0.0, 0.0, 10.0, 10.0],
                [0.0, 0.0, 10.0, 11.0],
                [20.0, 20.0, 30.0, 30.0],
                [40.0, 0.0, 50.0, 10.0],
            ]
        ),
        torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
    ]
    losses = torch.tensor([5.0, 4.0, 1.0, 3.0, 0.5, 0.7])
    image_index = torch.tensor([0, 0, 0, 0, 1, 1])
    keep = hardest_after_nms(boxes, losses, image_index, per_image=2, nms_thresh=0.7)
    assert keep.tolist() == [0, 3, 4, 5]  # RoI 1 overlaps RoI 0 (IoU 0.91) and is suppressed
    assert hardest_after_nms(boxes, losses, image_index, 2, nms_thresh=1.0).tolist() == [0, 1, 4, 5]


def test_roi_losses_add_the_box_loss_of_foreground_rois():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 1])
    deltas = torch.zeros(2, 8)
    targets = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    cls_only = roi_losses(logits, None, labels, targets)
    both = roi_losses(logits, deltas, labels, targets)
    assert both[0] == cls_only[0]  # background: no box loss
    assert float(both[1] - cls_only[1]) == pytest.approx(1.0 - 0.5 / 9)  # smooth L1 with beta 1/9


def test_ohem_trains_on_the_hardest_rois_only():
    torch.manual_seed(0)
    method = build_method({"name": "ohem"})
    model = build_model(TINY, 3, method)
    assert method.per_image == 8
    model.train()
    images = [torch.rand(3, 64, 80), torch.rand(3, 64, 80)]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)},
    ]
    seen = []
    model.roi_heads.box_head.register_forward_hook(lambda module, args, output: seen.append(len(args[0])))
    losses = model(images, targets)
    assert seen[0] > 16 and seen[-1] == 16  # every proposal scored; the head trains on 8 per image
    assert method.statistics()["ohem_rois"] == 16.0
    assert torch.isfinite(losses["loss_classifier"]) and losses["loss_classifier"].requires_grad
