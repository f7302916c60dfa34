"""``ohem``: online hard example mining (Shrivastava, Gupta, Girshick, CVPR 2016), A-Fast-RCNN's Sec. 5.4 comparison.

Instead of sampling 25% foreground / 75% background RoIs at random, OHEM

1. matches *every* proposal (plus the ground-truth boxes) to the ground truth, no subsampling
   (:attr:`~iadet.modeling.methods.base.RoIMethod.samples_every_proposal`; foreground IoU >= 0.5,
   background below, as torchvision's matcher);
2. scores them all with a read-only pass of the box head (eval mode, float32, no gradients):
   each RoI's loss is its classification loss plus its box-regression loss (smooth L1, as
   ``fastrcnn_loss``, for foreground RoIs);
3. per image, runs NMS on the RoIs with their loss as the score (IoU 0.7: overlapping RoIs
   share their loss, so one region cannot fill the batch) and keeps the ``B / N`` hardest;
4. trains the box head on those RoIs only (``RoIOutput.keep``); the heads' ``fastrcnn_loss`` then
   averages over them.

``batch_size_per_image`` defaults to ``model.box_batch_size_per_image`` (the OHEM paper: B = 128 RoIs over
N = 2 images, 64 per image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms

from iadet.config.methods import MethodParams, check_in_range, check_non_negative, register_preset
from iadet.modeling.methods.base import RoIBatch, RoIMethod, RoIOutput
from iadet.modeling.methods.probes import eval_mode, float32_probe

# ----------------------------------------------------------------------------------------------
# parameters and presets


@dataclass
class OHEMParams(MethodParams):
    """``method.*`` for ``ohem``."""

    batch_size_per_image: int = 0
    """Hard RoIs kept per image; 0: ``model.box_batch_size_per_image``."""
    nms_thresh: float = 0.7
    """IoU of the NMS among the RoIs ranked by loss (the OHEM paper: 0.7; 1.0 turns it off)."""
    box_loss: bool = True
    """Rank by classification + box-regression loss (the paper); ``false``: classification only."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_non_negative(self, ("batch_size_per_image",))
        check_in_range(self, ("nms_thresh",))


register_preset(
    "ohem",
    OHEMParams,
    doc="Online hard example mining (Shrivastava et al. 2016), A-Fast-RCNN's Sec. 5.4 comparison",
    family="A-Fast-RCNN",
)


# ----------------------------------------------------------------------------------------------


def roi_losses(
    class_logits: Tensor, box_regression: Tensor | None, labels: Tensor, regression_targets: Tensor
) -> Tensor:
    """Per-RoI Fast R-CNN loss ``(N,)``: cross-entropy, plus smooth L1 (beta 1/9, summed over the 4
    coordinates of the ground-truth class's deltas) for foreground RoIs when ``box_regression``
    ``(N, 4 (K + 1))`` is given."""
    loss = F.cross_entropy(class_logits.float(), labels, reduction="none")
    if box_regression is not None:
        n = labels.shape[0]
        deltas = box_regression.float().reshape(n, -1, 4)[torch.arange(n, device=labels.device), labels]
        box = F.smooth_l1_loss(deltas, regression_targets.float(), beta=1 / 9, reduction="none").sum(1)
        loss = loss + box * (labels > 0).float()
    return loss


def hardest_after_nms(
    proposals: list[Tensor], losses: Tensor, image_index: Tensor, per_image: int, nms_thresh: float
) -> Tensor:
    """Global indices of the ``per_image`` highest-loss RoIs of each image after NMS (ascending)."""
    keep = []
    for i, boxes in enumerate(proposals):
        index = torch.nonzero(image_index == i).squeeze(1)
        if index.numel() == 0:
            continue
        order = nms(boxes.detach().float(), losses[index], nms_thresh)
        keep.append(index[order[:per_image]])
    if not keep:
        return image_index.new_zeros((0,))
    return torch.cat(keep).sort().values


class OHEM(RoIMethod, params=OHEMParams):
    """Online hard example mining: the box head trains on the hardest RoIs of each image (Sec. 5.4)."""

    def __init__(self, params: OHEMParams | None = None) -> None:
        super().__init__(params)
        self.per_image = self.params.batch_size_per_image

    def setup(self, model: nn.Module) -> None:
        if not self.per_image:
            self.per_image = int(model.roi_heads.fg_bg_sampler.batch_size_per_image)

    samples_every_proposal = True

    def forward(self, features: Tensor, batch: RoIBatch) -> RoIOutput:
        labels, score_fn = batch.labels, batch.head
        if features.shape[0] == 0:
            return RoIOutput(features)
        with torch.no_grad(), eval_mode(score_fn), float32_probe(features.device.type):
            x = features.detach().float()
            if self.params.box_loss and hasattr(score_fn, "predict"):
                class_logits, box_regression = score_fn.predict(x)
            else:
                class_logits, box_regression = score_fn(x), None
            losses = roi_losses(class_logits, box_regression, labels, batch.regression_targets)
        keep = hardest_after_nms(
            batch.proposals, losses, batch.image_index, self.per_image, self.params.nms_thresh
        )
        stats = {
            "ohem_rois": float(keep.numel()),
            "ohem_fg": float((labels[keep] > 0).float().mean()) if keep.numel() else 0.0,
            "ohem_loss": float(losses[keep].mean()) if keep.numel() else 0.0,
        }
        return RoIOutput(features[keep], keep=keep, stats=stats)
