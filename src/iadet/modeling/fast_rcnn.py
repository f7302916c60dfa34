"""Fast R-CNN (Girshick, ICCV 2015): Faster R-CNN's detector on precomputed proposals.

:class:`FastRCNN` is torchvision's ``FasterRCNN`` with the region proposal network removed:
``forward`` takes the proposals (e.g. selective search, :mod:`iadet.data.proposals`) in
original-image pixels, resizes them with the image, and runs the same RoI heads::

    images, targets = transform(images, targets)          # resize + normalise, as Faster R-CNN
    proposals = resize(proposals, original -> resized)     # the same per-axis scale as the boxes
    features = backbone(images)
    detections, losses = roi_heads(features, proposals, image_sizes, targets)

In training the ground-truth boxes join the proposals (torchvision's
``select_training_samples``, as Fast R-CNN trains, Sec. 2.3), and the proposals can ride in
each target as ``target["proposals"]`` — the dataset puts them there so that a horizontal flip
moves them with the image. Its state dict is Faster R-CNN's without the ``rpn.*`` keys.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import boxes as box_ops

from iadet.errors import ConfigError


class FastRCNN(FasterRCNN):
    """Fast R-CNN: ``forward(images, targets=None, proposals=None)``.

    Args:
        backbone, num_classes, **kwargs: as ``FasterRCNN``; the ``rpn_*`` arguments are ignored.
        proposals_train: proposals kept per image in training (the first ones, in file order).
        proposals_test: proposals kept per image at inference (Fast R-CNN tests on ~2000).

    ``proposals`` is a list (one per image) of ``(K_i, 4)`` float ``x1, y1, x2, y2`` boxes in
    0-based pixels of the image as given to ``forward``; when ``None``, each target's
    ``"proposals"`` entry is used.
    """

    needs_proposals = True
    """Tells :func:`iadet.engine.inference.predict` to pass ``proposals``."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int | None = None,
        *,
        proposals_train: int = 2000,
        proposals_test: int = 2000,
        **kwargs,
    ) -> None:
        super().__init__(backbone, num_classes, **kwargs)
        del self.rpn  # no region proposal network: no rpn.* parameters
        self.proposals_per_image = {"training": proposals_train, "testing": proposals_test}

    def forward(
        self,
        images: list[Tensor],
        targets: list[dict[str, Tensor]] | None = None,
        proposals: list[Tensor] | None = None,
    ):
        if proposals is None and targets is not None and all("proposals" in t for t in targets):
            proposals = [t["proposals"] for t in targets]
        if proposals is None:
            raise ConfigError(
                "model.detector=fast_rcnn needs precomputed proposals (data.proposals=FILE; "
                "make them with `iadet proposals`)"
            )
        if len(proposals) != len(images):
            raise ValueError(f"got {len(proposals)} proposal sets for {len(images)} images")
        if self.training:
            if targets is None:
                raise ValueError("targets are required in training mode")
            targets = [{k: v for k, v in t.items() if k != "proposals"} for t in targets]

        original_sizes = [(img.shape[-2], img.shape[-1]) for img in images]  # no int(): ONNX tracing
        images, targets = self.transform(images, targets)
        boxes = self.prepare_proposals(proposals, original_sizes, images.image_sizes)
        features = self.backbone(images.tensors)
        if isinstance(features, Tensor):
            features = OrderedDict([("0", features)])
        detections, losses = self.roi_heads(features, boxes, images.image_sizes, targets)
        if self.training:
            return losses
        return self.transform.postprocess(detections, images.image_sizes, original_sizes)

    def prepare_proposals(
        self,
        proposals: list[Tensor],
        original_sizes: list[tuple[int, int]],
        image_sizes: list[tuple[int, int]],
    ) -> list[Tensor]:
        """Keep the first ``proposals_per_image`` boxes, scale them as the image was resized, clip to
        the resized image and drop the empty ones: per image ``(K_i, 4)`` -> ``(K'_i, 4)`` float32."""
        limit = self.proposals_per_image["training" if self.training else "testing"]
        device = next(self.parameters()).device
        out = []
        for boxes, original, resized in zip(proposals, original_sizes, image_sizes):
            boxes = torch.as_tensor(boxes, dtype=torch.float32, device=device).reshape(-1, 4)[:limit]
            boxes = resize_boxes(boxes, list(original), list(resized))
            boxes = box_ops.clip_boxes_to_image(boxes, resized)
            out.append(boxes[box_ops.remove_small_boxes(boxes, 1e-3)])
        return out
