"""The config schema: every key, its type and its default.

A config has five sections, ``model``, ``data``, ``train``, ``method`` and ``eval``. The first
four fixed sections are dataclasses below; ``method`` is a free mapping validated against the
parameters of the chosen method (``method.name``), see :mod:`iadet.modeling.methods`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    detector: str = "faster_rcnn"
    """``faster_rcnn``, ``fast_rcnn`` (external proposals) or ``mask_rcnn``."""
    backbone: str = "resnet50_fpn"
    """``alexnet``, ``vgg16``, ``resnet50_c4``, ``resnet101_c4``, ``resnet50_fpn``, ``resnet101_fpn``,
    ``resnext101_32x4d_fpn``, ``resnext101_32x8d_fpn``, ``resnext101_64x4d_fpn``, ``mobilenet_v3_fpn`` or ``tiny``; see
    :data:`iadet.modeling.backbones.BACKBONES`."""
    weights: str | None = None
    """Whole-detector weights: a torchvision weights name (``FasterRCNN_ResNet50_FPN_Weights.COCO_V1``) or a
    local ``.pth`` path. A box predictor of another class count is re-initialised (fine-tuning)."""
    backbone_weights: str | None = None
    """Backbone (ImageNet) weights: a torchvision weights name (``ResNet50_Weights.IMAGENET1K_V1``) or a path."""
    trainable_backbone_layers: int | None = None
    """Backbone stages left trainable (ResNet, VGG16, tiny: 0-5); ``None`` = the backbone's default (3 with
    pretrained weights; AlexNet: 4, conv2 and up, as Fast R-CNN)."""
    min_size: int = 800
    """Resize so the shorter side is ``min_size`` (torchvision's GeneralizedRCNNTransform; the papers: 600)."""
    max_size: int = 1333
    """... unless the longer side would exceed ``max_size`` (the papers: 1000)."""
    rpn_pre_nms_top_n_train: int = 2000
    """RPN proposals per feature level kept before NMS in training."""
    rpn_post_nms_top_n_train: int = 2000
    """Proposals per image kept after the RPN's NMS in training; for ``fast_rcnn``, the external proposals kept."""
    rpn_pre_nms_top_n_test: int = 1000
    """As ``rpn_pre_nms_top_n_train``, at inference."""
    rpn_post_nms_top_n_test: int = 1000
    """As ``rpn_post_nms_top_n_train``, at inference (Fast R-CNN tests on 2000 selective-search boxes)."""
    rpn_batch_size_per_image: int = 256
    """Anchors sampled per image for the RPN loss."""
    box_batch_size_per_image: int = 512
    """Sampled RoIs per image for the box head (the papers: 128 per image, 256 per batch of 2)."""
    box_positive_fraction: float = 0.25
    """Fraction of foreground among the sampled RoIs."""
    box_score_thresh: float = 0.05
    """Detections scoring below are dropped at inference."""
    box_nms_thresh: float = 0.5
    """Per-class NMS IoU at inference."""
    box_detections_per_img: int = 100
    """Detections kept per image at inference."""


@dataclass
class DataConfig:
    root: str | None = None
    """Dataset directory. VOC layout (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/``), a VOCdevkit
    holding ``VOC2007/``..., or COCO (``annotations/instances_<split>.json`` + ``<split>/``). ``None``: the
    built-in data (``data.preset``), generated once and cached."""
    format: str = "auto"
    """``auto``, ``voc`` or ``coco``."""
    preset: str = "quick"
    """Built-in data preset when ``root`` is not given: ``quick`` or ``full``."""
    synth_seed: int = 0
    """Seed of the built-in data generator (not of training)."""
    train_split: str = "trainval"
    """Split(s) to train on; ``+`` concatenates, ``DIR/split`` picks a sub-dataset
    (``VOC2007/trainval+VOC2012/trainval``)."""
    test_split: str = "test"
    """Split evaluated at the end of training and by default in ``iadet eval``."""
    classes: list[str] | None = None
    """Class names (background excluded). ``None``: read from the dataset (``classes.txt``, the COCO
    categories, or the 20 VOC classes)."""
    use_difficult: bool = False
    """Train on ``difficult`` objects too (py-faster-rcnn leaves them out; evaluation always keeps them)."""
    flip: bool = True
    """Random horizontal flip (probability 0.5), as both papers."""
    aspect_ratio_grouping: bool = True
    """Batch landscape and portrait images separately (torchvision's GroupedBatchSampler idea)."""
    num_workers: int = 2
    """DataLoader worker processes."""
    proposals: str | None = None
    """Precomputed proposals for ``model.detector=fast_rcnn`` (pickle or ``.npz``)."""
    max_image_pixels: int = 40_000_000
    """Images whose header declares more pixels (width x height) are refused before decoding."""
    follow_symlinks: bool = False
    """Follow symbolic links in the dataset that lead outside its directory (refused otherwise)."""


@dataclass
class TrainConfig:
    epochs: float = 8
    """Length in passes over the training split (fractions allowed)."""
    max_iters: int | None = None
    """Length in iterations; overrides ``epochs`` when set."""
    batch_size: int = 2
    """Images per iteration over all processes (divided among DDP ranks)."""
    lr: float = 0.002
    """Base learning rate of SGD (the papers: 2e-3 on VOC with batch 2)."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 0.0001
    """SGD weight decay (py-faster-rcnn: 5e-4 for VGG16)."""
    lr_steps: list[float] = field(default_factory=lambda: [6.0])
    """Where the learning rate is multiplied by ``gamma``, in the unit of the schedule: epochs when
    ``epochs`` sets the length, iterations when ``max_iters`` does."""
    gamma: float = 0.1
    """Learning-rate decay factor at each of ``lr_steps``."""
    warmup_iters: int = 100
    """Linear warm-up iterations from ``lr * warmup_factor`` to ``lr``."""
    warmup_factor: float = 0.001
    """Starting fraction of the learning rate during warm-up."""
    clip_grad_norm: float | None = None
    """Clip the detector's gradient norm to this value (off when null)."""
    amp: bool = True
    """Mixed precision (only on CUDA)."""
    seed: int = 0
    """Seeds initialisation, data order, flips and every sampling draw."""
    deterministic: bool = False
    """Deterministic algorithms and one thread order: bit-identical reruns and resumes on CPU. On CUDA
    slower and only partly deterministic: RoIAlign becomes torchvision's compiled Python version (in
    evaluation too), RoIPool and ``grid_sample`` stay non-deterministic (docs/gpu.md)."""
    log_every: int = 20
    """Iterations between rows of ``metrics.jsonl`` (and TensorBoard points)."""
    checkpoint_every: int = 500
    """Iterations between atomic writes of ``checkpoint.pth`` (also at the end and on SIGINT/SIGTERM)."""
    eval_every: int = 0
    """Evaluate on ``data.test_split`` every N iterations (0: only at the end, when ``eval_at_end``)."""
    eval_at_end: bool = True
    """Evaluate ``data.test_split`` when training ends (writes ``eval.json``)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``..."""


@dataclass
class EvalConfig:
    metric: str = "voc07"
    """``voc07`` (11-point), ``voc`` (area, VOC2010+) or ``coco``."""
    iou: float = 0.5
    """IoU threshold of the VOC metrics (strictly greater, as the devkit)."""
    batch_size: int = 4
    """Images per inference batch."""
    max_images: int | None = None
    """Evaluate on the first N images only (quick looks)."""


@dataclass(frozen=True)
class Range:
    """The values a number may take: ``low``/``high`` bounds (None: unbounded), open or closed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: float) -> bool:
        try:
            if not math.isfinite(value):
                return False
        except OverflowError:  # an integer beyond float range
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return (
            f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        )


AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
POSITIVE = Range(0, low_open=True)
FRACTION = Range(0, 1)

RANGES: dict[str, Range] = {
    "model.trainable_backbone_layers": Range(0, 5),
    "model.min_size": AT_LEAST_1,
    "model.max_size": AT_LEAST_1,
    "model.rpn_pre_nms_top_n_train": AT_LEAST_1,
    "model.rpn_post_nms_top_n_train": AT_LEAST_1,
    "model.rpn_pre_nms_top_n_test": AT_LEAST_1,
    "model.rpn_post_nms_top_n_test": AT_LEAST_1,
    "model.rpn_batch_size_per_image": AT_LEAST_1,
    "model.box_batch_size_per_image": AT_LEAST_1,
    "model.box_positive_fraction": Range(0, 1, low_open=True),
    "model.box_score_thresh": FRACTION,
    "model.box_nms_thresh": FRACTION,
    "model.box_detections_per_img": AT_LEAST_1,
    "data.num_workers": AT_LEAST_0,
    "data.max_image_pixels": AT_LEAST_1,
    "train.epochs": POSITIVE,
    "train.max_iters": AT_LEAST_1,
    "train.batch_size": AT_LEAST_1,
    "train.lr": POSITIVE,
    "train.momentum": FRACTION,
    "train.weight_decay": AT_LEAST_0,
    "train.lr_steps": AT_LEAST_0,
    "train.gamma": POSITIVE,
    "train.warmup_iters": AT_LEAST_0,
    "train.warmup_factor": Range(0, 1, low_open=True),
    "train.clip_grad_norm": POSITIVE,
    "train.log_every": AT_LEAST_1,
    "train.checkpoint_every": AT_LEAST_0,
    "train.eval_every": AT_LEAST_0,
    "eval.iou": Range(0, 1, high_open=True),
    "eval.batch_size": AT_LEAST_1,
    "eval.max_images": AT_LEAST_1,
}
"""What each number of the fixed sections may be, checked when a config is loaded (``None`` is
always allowed where the type allows it; a list's every item is checked)."""

SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}
