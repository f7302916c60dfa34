"""Ensembles of detectors: ``iadet eval --checkpoint A --checkpoint B`` (A-Fast-RCNN, Sec. 5.4).

:class:`EnsembleDetector` is an ``nn.Module`` with torchvision's detection API: in eval mode,
``model(images)`` (or ``model(images, proposals=...)`` for Fast R-CNN members) takes a list of
``(3, H, W)`` image tensors and returns one dict per image with ``boxes`` ``(D, 4)`` in pixels of
the image as given, ``labels`` ``(D,)`` and ``scores`` ``(D,)``. It is built as Fast R-CNN's and
OHEM's ensembles were: every member scores the *same* RoIs, and per RoI the class probabilities
and the box regressions are averaged before the one post-processing (per-class decoding, score
threshold, NMS, top detections)::

    rois = shared proposals (Fast R-CNN), or the union of the members' RPN proposals (Faster R-CNN)
    for each member m:  p_m, t_m = softmax(cls_score_m(head_m(pool_m(features_m, rois)))), bbox_pred_m(...)
    p = mean_m p_m,  t = mean_m t_m / w_m        (w_m: the member's box-coder weights, 10, 10, 5, 5)
    detections = postprocess(p, decode(t * w_0, rois))      # the first member's thresholds

* **Fast R-CNN** members share the proposals given to ``forward`` (``data.proposals``): the first
  member's ``proposals_test`` of them per image, clipped to the image.
* **Faster R-CNN / Mask R-CNN** members each propose with their own RPN; the proposals of all
  members (in pixels of the original image) are pooled per image and every member scores all of
  them, so with two members each RoI head sees twice its usual number of RoIs. An ensemble of a
  model with itself sees every proposal twice; the two copies score identically and NMS keeps one,
  so it detects what the model alone detects. (The alternative, pooling each member's final
  detections and re-running NMS, averages nothing: a box found by one member keeps that member's
  score, so it is not the ensemble the papers report.)
* Each member keeps its own input transform (resize and normalisation) and backbone; the RoIs are
  mapped to each member's resized image, and box regressions are scale-free, so members trained
  at different ``model.min_size`` combine. Masks (Mask R-CNN) are not ensembled: boxes only.

All members must predict the same classes (checked by :func:`load_ensemble` on the class names,
here on the predictor's width) and be of one kind (all Fast R-CNN, or all proposing for
themselves). The thresholds (``box_score_thresh``, ``box_nms_thresh``, ``box_detections_per_img``)
are the first member's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import boxes as box_ops

from iadet.config import Config
from iadet.engine.loading import load_detector
from iadet.errors import ConfigError


class EnsembleDetector(nn.Module):
    """The average of ``members`` (torchvision two-stage detectors of the same classes), per RoI.

    Inference only: ``forward`` raises in training mode. ``needs_proposals`` is True when the members
    are Fast R-CNNs (then :func:`iadet.engine.inference.predict` passes the proposals).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 1:
            raise ConfigError("an ensemble needs at least one detector")
        kinds = {bool(getattr(m, "needs_proposals", False)) for m in members}
        if len(kinds) > 1:
            raise ConfigError(
                "cannot ensemble Fast R-CNN (proposals from a file) with detectors that propose for themselves"
            )
        widths = {m.roi_heads.box_predictor.cls_score.out_features for m in members}
        if len(widths) > 1:
            raise ConfigError(f"the detectors predict different numbers of classes: {sorted(widths)}")
        self.members = nn.ModuleList(members)
        self.needs_proposals = kinds.pop()

    # --- forward -------------------------------------------------------------------------------
    def forward(
        self,
        images: list[Tensor],
        targets: list[dict[str, Tensor]] | None = None,
        proposals: list[Tensor] | None = None,
    ) -> list[dict[str, Tensor]]:
        if self.training:
            raise RuntimeError(
                "an EnsembleDetector only predicts: call .eval() (train its members one by one)"
            )
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        prepared = []
        for member in self.members:
            image_list, _ = member.transform(images)
            features = member.backbone(image_list.tensors)
            if isinstance(features, Tensor):
                features = OrderedDict([("0", features)])
            prepared.append((image_list, features))

        if self.needs_proposals:
            if proposals is None and targets is not None and all("proposals" in t for t in targets):
                proposals = [t["proposals"] for t in targets]
            if proposals is None:
                raise ConfigError(
                    "an ensemble of Fast R-CNNs needs precomputed proposals (data.proposals=FILE)"
                )
            if len(proposals) != len(images):
                raise ValueError(f"got {len(proposals)} proposal sets for {len(images)} images")
            rois = self.shared_proposals(proposals, original_sizes)
        else:
            rois = self.pooled_proposals(prepared, original_sizes)

        probabilities, deltas = self.average_outputs(prepared, rois, original_sizes)
        heads = self.members[0].roi_heads
        weights = torch.as_tensor(heads.box_coder.weights, dtype=deltas.dtype, device=deltas.device)
        regression = (deltas * weights).flatten(1)
        # softmax(log p) = p: torchvision's post-processing applied to the averaged probabilities
        logits = probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny).log()
        boxes, scores, labels = heads.postprocess_detections(logits, regression, rois, original_sizes)
        return [{"boxes": b, "labels": lab, "scores": s} for b, s, lab in zip(boxes, scores, labels)]

    # --- the pieces ------------------------------------------------------------------------------
    def shared_proposals(
        self, proposals: list[Tensor], original_sizes: list[tuple[int, int]]
    ) -> list[Tensor]:
        """Fast R-CNN: the first member's ``proposals_test`` boxes per image, clipped to the image, empty
        ones dropped (as :meth:`~iadet.modeling.fast_rcnn.FastRCNN.prepare_proposals`, in original pixels)."""
        first = self.members[0]
        limit = first.proposals_per_image["testing"]
        device = next(first.parameters()).device
        out = []
        for boxes, size in zip(proposals, original_sizes):
            boxes = torch.as_tensor(boxes, dtype=torch.float32, device=device).reshape(-1, 4)[:limit]
            boxes = box_ops.clip_boxes_to_image(boxes, size)
            out.append(boxes[box_ops.remove_small_boxes(boxes, 1e-3)])
        return out

    def pooled_proposals(self, prepared, original_sizes: list[tuple[int, int]]) -> list[Tensor]:
        """Faster R-CNN: every member's RPN proposals, in original pixels, concatenated per image."""
        per_member = []
        for member, (image_list, features) in zip(self.members, prepared):
            proposals, _ = member.rpn(image_list, features)
            per_member.append(
                [
                    resize_boxes(p, list(resized), list(original))
                    for p, resized, original in zip(proposals, image_list.image_sizes, original_sizes)
                ]
            )
        return [torch.cat(parts) for parts in zip(*per_member)]

    def average_outputs(
        self, prepared, rois: list[Tensor], original_sizes: list[tuple[int, int]]
    ) -> tuple[Tensor, Tensor]:
        """``(probabilities (N, K), deltas (N, K, 4))``: the members' mean softmax and mean box
        regression over the ``N`` RoIs of all images (``rois`` in original pixels), each member's
        deltas divided by its box-coder weights."""
        probabilities: Tensor | None = None
        deltas: Tensor | None = None
        for member, (image_list, features) in zip(self.members, prepared):
            heads = member.roi_heads
            boxes = [
                box_ops.clip_boxes_to_image(resize_boxes(r, list(original), list(resized)), resized)
                for r, original, resized in zip(rois, original_sizes, image_list.image_sizes)
            ]
            pooled = heads.box_roi_pool(features, boxes, image_list.image_sizes)
            class_logits, box_regression = heads.box_predictor(heads.box_head(pooled))
            p = class_logits.float().softmax(-1)
            weights = torch.as_tensor(heads.box_coder.weights, dtype=torch.float32, device=p.device)
            t = box_regression.float().reshape(p.shape[0], -1, 4) / weights
            probabilities = p if probabilities is None else probabilities + p
            deltas = t if deltas is None else deltas + t
        assert probabilities is not None and deltas is not None
        n = len(self.members)
        return probabilities / n, deltas / n


def _class_difference(these: Sequence[str], those: Sequence[str]) -> str:
    """What differs between two class lists, in a few words."""
    if len(these) != len(those):
        return f"{len(these)} classes vs {len(those)}"
    if set(these) == set(those):
        return f"the same {len(these)} classes in another order"
    missing, extra = [c for c in those if c not in these], [c for c in these if c not in those]
    return f"{', '.join(map(repr, extra[:3]))} instead of {', '.join(map(repr, missing[:3]))}"


def load_ensemble(
    checkpoints: Iterable[str | Path],
    *,
    config: str | None = None,
    overrides: Iterable[str] = (),
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, Config, list[Config]]:
    """``(model, config, member configs)`` for one or more checkpoints (eval mode, on ``device``).

    One checkpoint gives its detector itself; several give an :class:`EnsembleDetector`, whose
    config is the first checkpoint's (data, proposals, thresholds). Every checkpoint must name the
    same classes in the same order.
    """
    paths = [str(c) for c in checkpoints]
    if not paths:
        raise ConfigError("no checkpoint given")
    overrides = list(overrides)
    models, configs = [], []
    for path in paths:
        model, cfg = load_detector(path, config=config, overrides=overrides, device=device)
        if configs and cfg.data.classes != configs[0].data.classes:
            difference = _class_difference(cfg.data.classes, configs[0].data.classes)
            raise ConfigError(
                f"{path} predicts other classes than {paths[0]} ({difference}): an ensemble averages the same classes"
            )
        fast = [cfg.model.detector == "fast_rcnn", *(c.model.detector == "fast_rcnn" for c in configs[:1])]
        if configs and fast[0] != fast[1]:
            fast_path, other = (path, paths[0]) if fast[0] else (paths[0], path)
            raise ConfigError(
                f"cannot ensemble {fast_path} (Fast R-CNN, proposals from a file) with {other}, which proposes for itself"
            )
        models.append(model)
        configs.append(cfg)
    if len(models) == 1:
        return models[0], configs[0], configs
    return EnsembleDetector(models).to(device).eval(), configs[0], configs
