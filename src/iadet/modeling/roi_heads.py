"""torchvision's RoIHeads that, in training, run one method on the RoI-pooled features.

:class:`RoIHeadsWithMethod` is a drop-in subclass of ``torchvision.models.detection.roi_heads.RoIHeads``:
same submodules, same state-dict keys, and in eval mode it *is* torchvision's forward
(``super().forward``). In training it runs the same steps as torchvision — sample RoIs, pool,
box head, predictor, Fast R-CNN loss (and the mask branch for Mask R-CNN) — with the
method between pooling and the box head::

    proposals = sample(method.transform_proposals(proposals), targets)  # torchvision's 25/75 (or all)
    pooled = box_roi_pool(features, proposals)          # (N, C, H, W)
    method.begin_step()                                 # the method's clock: its stage, its ramp
    out = method(pooled, batch)                         # IA / ASDN / ASTN / identity -> RoIOutput
    method.end_step(out)                                # an adversary's own update; statistics
    logits, deltas = box_predictor(box_head(out.features))

The loss dict is the detector's alone, as torchvision's: a method's own (adversary) losses are
spent inside the method (:meth:`~iadet.modeling.methods.base.RoIMethod.step_adversary`), and
they and the method's other scalars are read with ``method.statistics()``.

On the CPU the training pooling uses a faster RoIAlign backward (:mod:`iadet.modeling.roi_align`;
the same forward and modules). The method is stored outside the module tree (not a registered child), so the detector's
``state_dict`` never contains it, and neither does a pickled or deep-copied detector (``torch.save(model)``,
an EMA copy): those get torchvision's behaviour.
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

from iadet.modeling.methods.base import BoxScorer, RoIBatch, RoIMethod
from iadet.modeling.roi_align import pool_box_features


class RoIHeadsWithMethod(RoIHeads):
    """RoIHeads whose training forward passes the pooled RoI features through a method."""

    @classmethod
    def from_heads(cls, heads: RoIHeads, method: RoIMethod | None = None) -> RoIHeadsWithMethod:
        """A copy of torchvision's ``heads`` that runs a method: the same submodules (shared, not copied) and settings."""
        if type(heads) is not RoIHeads:
            raise TypeError(f"cannot run a method in {type(heads).__name__}; expected torchvision's RoIHeads")
        heads_with_method = _rebuild(cls, heads)
        heads_with_method.set_method(method)
        return heads_with_method

    def to_stock(self) -> RoIHeads:
        """torchvision's ``RoIHeads`` with the same submodules and settings, and no method."""
        return _rebuild(RoIHeads, self)

    @property
    def roi_method(self) -> RoIMethod | None:
        return self.__dict__.get("_roi_method")

    def set_method(self, method: RoIMethod | None) -> None:
        # bypass nn.Module.__setattr__: the method must not become a child module
        self.__dict__["_roi_method"] = method

    def __getstate__(self) -> dict:
        # pickling / deep-copying the detector leaves the method (and its adversary) behind
        state = dict(super().__getstate__())
        state.pop("_roi_method", None)
        return state

    @property
    def score_fn(self) -> BoxScorer:
        """Box head + predictor on pooled features, ``(N, C, H, W) -> (N, K + 1)`` class logits, as the
        methods and the attention pictures probe them (a module over the heads' own submodules)."""
        return BoxScorer(self.box_head, self.box_predictor)

    def match_every_proposal(
        self, proposals: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """torchvision's ``select_training_samples`` without the foreground/background subsampling:
        every proposal and ground-truth box, with its label (the RoIs between the thresholds, ``-1``,
        left out), matched index and encoded regression target; lists over images."""
        self.check_targets(targets)
        dtype, device = proposals[0].dtype, proposals[0].device
        gt_boxes = [t["boxes"].to(dtype) for t in targets]
        gt_labels = [t["labels"] for t in targets]
        proposals = self.add_gt_proposals(proposals, gt_boxes)
        matched_idxs, labels = self.assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        matched_gt_boxes = []
        for i in range(len(proposals)):
            valid = torch.nonzero(labels[i] >= 0).squeeze(1)
            proposals[i], labels[i], matched_idxs[i] = (
                proposals[i][valid],
                labels[i][valid],
                matched_idxs[i][valid],
            )
            boxes = gt_boxes[i] if gt_boxes[i].numel() else torch.zeros((1, 4), dtype=dtype, device=device)
            matched_gt_boxes.append(boxes[matched_idxs[i]])
        regression_targets = self.box_coder.encode(matched_gt_boxes, proposals)
        return proposals, matched_idxs, labels, regression_targets

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
        method.follow_device(features[next(iter(features))].device)
        sample = self.match_every_proposal if method.samples_every_proposal else self.select_training_samples
        proposals, matched_idxs, labels, regression_targets = sample(
            method.transform_proposals(proposals), targets
        )
        pooled = pool_box_features(self.box_roi_pool, features, proposals, image_shapes)

        image_index = torch.cat(
            [
                torch.full((len(p),), i, dtype=torch.int64, device=pooled.device)
                for i, p in enumerate(proposals)
            ]
        )
        batch = RoIBatch(
            labels=torch.cat(labels),
            proposals=proposals,
            regression_targets=torch.cat(regression_targets),
            image_index=image_index,
            image_shapes=image_shapes,
            head=self.score_fn,
        )
        method.begin_step()
        out = method(pooled, batch)
        method.end_step(out)
        keep = out.keep
        if keep is not None:
            # the method trains on a subset of RoIs (OHEM): its features are already that subset
            labels_used = [batch.labels[keep]]
            targets_used = [batch.regression_targets[keep]]
        else:
            labels_used, targets_used = labels, regression_targets

        box_features = self.box_head(out.features)
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


def _rebuild(cls: type[RoIHeads], heads: RoIHeads) -> RoIHeads:
    """``cls`` built from the submodules (shared) and settings of ``heads``."""
    sampler, matcher = heads.fg_bg_sampler, heads.proposal_matcher
    rebuilt = cls(
        heads.box_roi_pool,
        heads.box_head,
        heads.box_predictor,
        fg_iou_thresh=matcher.high_threshold,
        bg_iou_thresh=matcher.low_threshold,
        batch_size_per_image=sampler.batch_size_per_image,
        positive_fraction=sampler.positive_fraction,
        bbox_reg_weights=heads.box_coder.weights,
        score_thresh=heads.score_thresh,
        nms_thresh=heads.nms_thresh,
        detections_per_img=heads.detections_per_img,
        mask_roi_pool=heads.mask_roi_pool,
        mask_head=heads.mask_head,
        mask_predictor=heads.mask_predictor,
        keypoint_roi_pool=heads.keypoint_roi_pool,
        keypoint_head=heads.keypoint_head,
        keypoint_predictor=heads.keypoint_predictor,
    )
    rebuilt.proposal_matcher.allow_low_quality_matches = matcher.allow_low_quality_matches
    rebuilt.train(heads.training)
    return rebuilt


def attach_method(model: nn.Module, method: RoIMethod | None) -> nn.Module:
    """Give ``model`` (in place) RoI heads carrying ``method``; returns ``model``.

    Works on any torchvision two-stage detector (Faster/Mask R-CNN): its ``roi_heads`` is replaced
    by :meth:`RoIHeadsWithMethod.from_heads` (the same submodules), so parameters, buffers and
    state-dict keys are unchanged; heads that already carry one just get the new method.
    """
    heads = model.roi_heads
    if isinstance(heads, RoIHeadsWithMethod):
        heads.set_method(method)
    else:
        model.roi_heads = RoIHeadsWithMethod.from_heads(heads, method)
    return model
