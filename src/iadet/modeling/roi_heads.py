"""torchvision's RoIHeads with one training-time hook on the RoI-pooled features.

:class:`HookedRoIHeads` is a drop-in subclass of ``torchvision.models.detection.roi_heads.RoIHeads``:
same submodules, same state-dict keys, and in eval mode it *is* torchvision's forward
(``super().forward``). In training it runs the same steps as torchvision — sample RoIs, pool,
box head, predictor, Fast R-CNN loss (and the mask branch for Mask R-CNN) — with the
method's hook between pooling and the box head::

    pooled = box_roi_pool(features, proposals)        # (N, C, H, W)
    pooled = method(pooled, labels, score_fn, batch)  # IA / ASDN / ASTN / identity
    logits, deltas = box_predictor(box_head(pooled))

The method is stored outside the module tree (not a registered child), so the detector's
``state_dict`` never contains it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    fastrcnn_loss,
    maskrcnn_inference,  # noqa: F401  (re-exported for symmetry with torchvision)
    maskrcnn_loss,
)

from iadet.modeling.methods.base import RoIBatch, RoIMethod


class HookedRoIHeads(RoIHeads):
    """RoIHeads whose training forward passes the pooled RoI features through a method."""

    @property
    def roi_method(self) -> RoIMethod | None:
        return self.__dict__.get("_roi_method")

    def set_method(self, method: RoIMethod | None) -> None:
        # bypass nn.Module.__setattr__: the method must not become a child module
        self.__dict__["_roi_method"] = method

    def score_fn(self, pooled: Tensor) -> Tensor:
        """Box head + predictor on pooled features: ``(N, C, H, W) -> (N, K + 1)`` class logits."""
        return self.box_predictor(self.box_head(pooled))[0]

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if not self.training or self.roi_method is None:
            return super().forward(features, proposals, image_shapes, targets)
        if targets is None:
            raise ValueError("targets are required in training mode")
        for t in targets:
            if not t["boxes"].is_floating_point():
                raise TypeError(f"target boxes must be of float type, got {t['boxes'].dtype}")
            if t["labels"].dtype != torch.int64:
                raise TypeError(f"target labels must be int64, got {t['labels'].dtype}")
        return self._forward_train(features, proposals, image_shapes, targets)

    def _forward_train(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]],
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        method = self.roi_method
        assert method is not None
        proposals, matched_idxs, labels, regression_targets = method.sample_proposals(
            self, proposals, targets
        )
        pooled = self.box_roi_pool(features, proposals, image_shapes)

        image_index = torch.cat(
            [
                torch.full((len(p),), i, dtype=torch.int64, device=pooled.device)
                for i, p in enumerate(proposals)
            ]
        )
        batch = RoIBatch(
            proposals=proposals,
            labels=torch.cat(labels),
            regression_targets=torch.cat(regression_targets),
            image_index=image_index,
            image_shapes=image_shapes,
            iteration=method.iteration,
        )
        pooled = method(pooled, batch.labels, self.score_fn, batch)
        method.last_batch = batch  # read by the engine for adversary losses and stats

        if batch.keep is not None:
            # the method trains on a subset of RoIs (OHEM): features already subset to `keep`
            keep = batch.keep
            labels_used = [batch.labels[keep]]
            targets_used = [batch.regression_targets[keep]]
        else:
            keep = None
            labels_used, targets_used = labels, regression_targets

        box_features = self.box_head(pooled)
        class_logits, box_regression = self.box_predictor(box_features)
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels_used, targets_used)
        losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}

        if self.has_mask():
            losses.update(
                self._mask_loss(features, proposals, image_shapes, targets, labels, matched_idxs, keep)
            )
        return [], losses

    def _mask_loss(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]],
        labels: list[Tensor],
        matched_idxs: list[Tensor],
        keep: Tensor | None,
    ) -> dict[str, Tensor]:
        """Mask R-CNN's mask loss on the positive sampled RoIs (as torchvision trains it)."""
        if keep is not None:
            kept = torch.zeros(sum(len(p) for p in proposals), dtype=torch.bool, device=keep.device)
            kept[keep] = True
            kept_per_image = kept.split([len(p) for p in proposals])
        else:
            kept_per_image = [None] * len(proposals)
        mask_proposals, pos_matched_idxs = [], []
        for props, lab, idx, kept_i in zip(proposals, labels, matched_idxs, kept_per_image):
            positive = lab > 0
            if kept_i is not None:
                positive = positive & kept_i
            pos = torch.where(positive)[0]
            mask_proposals.append(props[pos])
            pos_matched_idxs.append(idx[pos])
        mask_features = self.mask_roi_pool(features, mask_proposals, image_shapes)
        mask_logits = self.mask_predictor(self.mask_head(mask_features))
        gt_masks = [t["masks"] for t in targets]
        gt_labels = [t["labels"] for t in targets]
        return {
            "loss_mask": maskrcnn_loss(mask_logits, mask_proposals, gt_masks, gt_labels, pos_matched_idxs)
        }


def attach_method(model: nn.Module, method: RoIMethod | None) -> nn.Module:
    """Turn ``model.roi_heads`` into a :class:`HookedRoIHeads` (in place) and give it ``method``.

    Works on any torchvision two-stage detector (Faster/Mask R-CNN); parameters, buffers and
    state-dict keys are unchanged.
    """
    heads = model.roi_heads
    if not isinstance(heads, HookedRoIHeads):
        if type(heads) is not RoIHeads:
            raise TypeError(f"cannot hook {type(heads).__name__}; expected torchvision's RoIHeads")
        heads.__class__ = HookedRoIHeads
    heads.set_method(method)
    return model
