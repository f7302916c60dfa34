"""Build a torchvision detector from ``model.*`` with a training method on its RoI features.

``model.detector``: ``faster_rcnn`` (torchvision's ``FasterRCNN``), ``fast_rcnn``
(:class:`~iadet.modeling.fast_rcnn.FastRCNN`, on precomputed proposals) or ``mask_rcnn``
(torchvision's ``MaskRCNN``; every method acts on the box branch only, as the IA paper's Table 6).
``model.backbone``: any of :data:`~iadet.modeling.backbones.BACKBONES`, with every detector.
"""

from __future__ import annotations

import warnings

from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

from iadet.config.schema import ModelConfig
from iadet.errors import ConfigError, closest
from iadet.modeling.attach import attach
from iadet.modeling.backbones import BACKBONES
from iadet.modeling.fast_rcnn import FastRCNN
from iadet.modeling.methods.base import RoIMethod
from iadet.modeling.roi_heads import attach_method
from iadet.modeling.weights import load_detector_weights

DETECTORS: dict[str, type[nn.Module]] = {
    "faster_rcnn": FasterRCNN,
    "fast_rcnn": FastRCNN,
    "mask_rcnn": MaskRCNN,
}


def detector_kwargs(cfg: ModelConfig) -> dict:
    """The ``FasterRCNN(...)`` keyword arguments that ``model.*`` sets."""
    keys = [
        "min_size",
        "max_size",
        "rpn_pre_nms_top_n_train",
        "rpn_pre_nms_top_n_test",
        "rpn_post_nms_top_n_train",
        "rpn_post_nms_top_n_test",
        "rpn_batch_size_per_image",
        "box_batch_size_per_image",
        "box_positive_fraction",
        "box_score_thresh",
        "box_nms_thresh",
        "box_detections_per_img",
    ]
    return {k: getattr(cfg, k) for k in keys}


def build_model(
    cfg: ModelConfig, num_classes: int, method: RoIMethod | None = None, *, max_iters: int | None = None
) -> nn.Module:
    """A torchvision detector for ``num_classes`` classes (background included).

    The returned model is a stock ``FasterRCNN``/``MaskRCNN`` whose ``roi_heads`` is a
    :class:`~iadet.modeling.roi_heads.RoIHeadsWithMethod` (torchvision's in eval mode, and with no
    method); ``method``, when given, is attached with :func:`iadet.modeling.attach.attach` for a run of
    ``max_iters`` steps. Its state-dict keys are those of the matching torchvision constructor.
    """
    if cfg.backbone not in BACKBONES:
        raise ConfigError(
            f"unknown model.backbone '{cfg.backbone}'{closest(cfg.backbone, BACKBONES)}; "
            f"valid: {', '.join(BACKBONES)}"
        )
    if cfg.detector not in DETECTORS:
        raise ConfigError(
            f"unknown model.detector '{cfg.detector}'{closest(cfg.detector, DETECTORS)}; "
            f"valid: {', '.join(DETECTORS)}"
        )
    if num_classes < 2:
        raise ConfigError(f"a detector needs at least one object class (got {num_classes - 1})")
    pretrained = bool(cfg.weights or cfg.backbone_weights)
    parts = BACKBONES[cfg.backbone](cfg, pretrained)
    kwargs = {**detector_kwargs(cfg), **parts.detector_kwargs}
    if cfg.detector == "mask_rcnn":
        kwargs.update(parts.mask_kwargs)
    if cfg.detector == "fast_rcnn":
        # the proposals come from a file: the RPN's "post-NMS top N" become the proposals per image
        kwargs["proposals_train"] = kwargs.pop("rpn_post_nms_top_n_train")
        kwargs["proposals_test"] = kwargs.pop("rpn_post_nms_top_n_test")
    if parts.representation_size is not None:
        kwargs["box_predictor"] = FastRCNNPredictor(parts.representation_size, num_classes)
        if cfg.detector == "mask_rcnn":  # MaskRCNN sizes its predictor from num_classes, which is now None
            kwargs["mask_predictor"] = MaskRCNNPredictor(256, 256, num_classes)
        model = DETECTORS[cfg.detector](parts.backbone, **kwargs)
    else:
        model = DETECTORS[cfg.detector](parts.backbone, num_classes=num_classes, **kwargs)
    if parts.box_roi_pool is not None:
        model.roi_heads.box_roi_pool = parts.box_roi_pool
    if cfg.weights:
        skipped = load_detector_weights(model, cfg.weights)
        if skipped:
            warnings.warn(
                f"model.weights: {len(skipped)} class-specific tensors re-initialised for {num_classes - 1} classes",
                stacklevel=2,
            )
    attach_method(model, None)
    if method is not None:
        attach(model, method, max_iters=max_iters)
    return model
