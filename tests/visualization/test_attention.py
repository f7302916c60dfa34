"""Tests of iadet.visualization.attention: the RoI-feature probe behind the attention pictures."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from iadet.config.schema import ModelConfig
from iadet.modeling.detector import build_model
from iadet.modeling.methods.inverted_attention import gt_score_gradients, inverted_attention_mask
from iadet.visualization.attention import (
    channel_attention,
    detect,
    pool_rois,
    roi_attention,
    top_affected_channels,
)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="tiny", min_size=144, max_size=192), num_classes=3)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(3, 72, 96, generator=torch.Generator().manual_seed(1))


BOXES = torch.tensor([[4.0, 6.0, 40.0, 30.0], [50.0, 20.0, 90.0, 70.0]])
LABELS = torch.tensor([1, 2])


def test_pool_rois_scales_the_boxes_with_the_image(model, image) -> None:
    model.eval()
    with torch.no_grad():
        images, _ = model.transform([image])
        features = OrderedDict([("0", model.backbone(images.tensors))])
        height, width = images.image_sizes[0]
        ratio = torch.tensor([width / 96, height / 72, width / 96, height / 72])
        assert ratio[0] == pytest.approx(2.0)  # min_size 144 doubles the 72-pixel side
        expected = model.roi_heads.box_roi_pool(features, [BOXES * ratio], images.image_sizes)
    pooled = pool_rois(model, [image], [BOXES])
    assert pooled.shape == (2, 128, 7, 7)
    torch.testing.assert_close(pooled, expected)
    # two images in one call give each image's RoIs, in order
    both = pool_rois(model, [image, image.flip(-1)], [BOXES[:1], BOXES])
    torch.testing.assert_close(both[:1], expected[:1])
    torch.testing.assert_close(both[1:], pool_rois(model, [image.flip(-1)], [BOXES]))


def test_roi_attention_is_eq1_and_leaves_the_model_as_it_was(model, image) -> None:
    model.train()
    att = roi_attention(model, image, BOXES, LABELS)
    assert model.training and model.transform.training and model.roi_heads.box_head.training
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    torch.testing.assert_close(att.grads, gt_score_gradients(att.features, LABELS, model.roi_heads.score_fn))
    torch.testing.assert_close(att.weights, att.grads.mean(dim=(2, 3)))
    torch.testing.assert_close(att.attention, (att.weights[:, :, None, None] * att.features).sum(1))
    assert att.attention.shape == (2, 7, 7) and att.probability.shape == (2,)
    probs = model.roi_heads.score_fn(att.features).softmax(1)
    torch.testing.assert_close(att.probability, probs[torch.arange(2), LABELS].detach())
    torch.testing.assert_close(att.inverted(), inverted_attention_mask(att.features, att.grads))


def test_channel_attention_sums_to_the_attention(model, image) -> None:
    att = roi_attention(model, image, BOXES, LABELS)
    torch.testing.assert_close(channel_attention(att.features, att.weights).sum(1), att.attention)
    mask = att.inverted(orientation="spatial")
    masked = channel_attention(att.features, att.weights, mask)
    torch.testing.assert_close(masked.sum(1), att.attention * mask[:, 0])


def test_top_affected_channels_by_removed_energy() -> None:
    features = torch.ones(1, 4, 2, 2)
    weights = torch.tensor([[1.0, -3.0, 2.0, 0.5]])
    mask = torch.ones(1, 4, 2, 2)
    mask[0, 0, 0, :] = 0  # removes 2 * |1| = 2
    mask[0, 2, 0, 0] = 0  # removes 1 * |2| = 2 (a tie with channel 0: larger |w| first)
    mask[0, 3] = 0  # removes 4 * 0.5 = 2 (a tie again, smallest |w|)
    # channel 1 loses nothing but has the largest |w|: it comes after all channels that lose something
    assert top_affected_channels(features, weights, mask, k=4).tolist() == [[2, 0, 3, 1]]
    assert top_affected_channels(features, weights, mask, k=2).tolist() == [[2, 0]]
    # a channel-broadcast mask (N, C, 1, 1) works too
    assert top_affected_channels(
        features, weights, torch.tensor([1.0, 1.0, 1.0, 0.0]).view(1, 4, 1, 1), 1
    ).tolist() == [[3]]


class FixedDetector(nn.Module):
    def forward(self, images):
        return [
            {
                "boxes": torch.arange(16, dtype=torch.float32).view(4, 4),
                "labels": torch.tensor([1, 2, 1, 2]),
                "scores": torch.tensor([0.9, 0.8, 0.6, 0.3]),
            }
            for _ in images
        ]


def test_detect_keeps_the_best_above_the_threshold(image) -> None:
    boxes, labels, scores = detect(FixedDetector(), image, score_thresh=0.5, max_objects=2)
    assert (
        scores.tolist() == pytest.approx([0.9, 0.8]) and labels.tolist() == [1, 2] and boxes.shape == (2, 4)
    )
    assert len(detect(FixedDetector(), image, score_thresh=0.5, max_objects=9)[0]) == 3
    assert len(detect(FixedDetector(), image, score_thresh=0.95)[0]) == 0
