"""Running the box head as a read-only probe: eval mode, float32, no parameter gradients.

Both papers probe the detector's head on (modified) RoI features during training — IA for
the ground-truth score's gradient, A-Fast-RCNN for the ground-truth probability under
candidate occlusions. The authors' code runs the head in eval mode for this (VGG's fc
dropout off). ``score_fn`` may be any callable; when it is an ``nn.Module`` (the detector's
:class:`~iadet.modeling.methods.base.BoxScorer`), it is switched to eval mode for the probe and
restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from iadet.modeling.methods.base import ScoreFn


@contextlib.contextmanager
def eval_mode(module_or_score_fn: nn.Module | ScoreFn) -> Iterator[nn.Module | None]:
    """Put a module (the detector's box scorer) in eval mode; restore every submodule's mode after.

    Yields the module (``None`` when ``score_fn`` is a plain function, which is then left as it is).
    """
    module = module_or_score_fn if isinstance(module_or_score_fn, nn.Module) else None
    if module is None:
        yield None
        return
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes:
            m.training = mode


@contextlib.contextmanager
def float32_probe(device_type: str) -> Iterator[None]:
    """Disable autocast so the probe computes in float32 under AMP."""
    with torch.autocast(device_type=device_type, enabled=False):
        yield


@torch.no_grad()
def gt_probabilities(features: Tensor, labels: Tensor, score_fn: ScoreFn) -> Tensor:
    """``softmax(score_fn(F))[n, labels[n]]`` in eval mode and float32: ``(N,)``.

    ``features`` ``(N, C, H, W)`` (any dtype), ``labels`` ``(N,)`` int64 (0 = background).
    """
    if features.shape[0] == 0:
        return features.new_zeros((0,), dtype=torch.float32)
    with eval_mode(score_fn), float32_probe(features.device.type):
        logits = score_fn(features.float())
    probs = logits.float().softmax(dim=1)
    return probs.gather(1, labels.view(-1, 1)).squeeze(1)


def pool_rois(model: nn.Module, images: Sequence[Tensor], boxes: Sequence[Tensor]) -> Tensor:
    """The detector's RoI-pooled features of ``boxes`` in ``images``: ``(sum N_i, C, H, W)`` float32.

    Args:
        model: a torchvision two-stage detector (``transform``, ``backbone``, ``roi_heads``).
        images: per image a float ``(3, H_i, W_i)`` tensor in [0, 1], at its original size, on the
            model's device.
        boxes: per image ``(N_i, 4)`` ``x1, y1, x2, y2`` in the original image's pixels.

    The images go through the model's own transform (resize + normalisation, eval mode), which
    scales the boxes with them, then the backbone and ``roi_heads.box_roi_pool``; no gradient.
    """
    device = images[0].device
    targets = [{"boxes": b.to(device=device, dtype=torch.float32)} for b in boxes]
    with eval_mode(model), torch.no_grad(), torch.autocast(device.type, enabled=False):
        batch, targets = model.transform(list(images), targets)
        features = model.backbone(batch.tensors)
        if isinstance(features, Tensor):
            features = OrderedDict([("0", features)])
        pooled = model.roi_heads.box_roi_pool(features, [t["boxes"] for t in targets], batch.image_sizes)
    return pooled.float()
