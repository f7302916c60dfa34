"""Running the box head as a read-only probe: eval mode, float32, no parameter gradients.

Both papers probe the detector's head on (modified) RoI features during training — IA for
the ground-truth score's gradient, A-Fast-RCNN for the ground-truth probability under
candidate occlusions. The authors' code runs the head in eval mode for this (VGG's fc
dropout off). ``score_fn`` may be any callable; when it is an ``nn.Module`` or a bound method
of one (``HookedRoIHeads.score_fn``), that module is switched to eval mode for the probe and
restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

ScoreFn = Callable[[Tensor], Tensor]


def head_module(score_fn: ScoreFn) -> nn.Module | None:
    """The module behind ``score_fn`` (itself, its ``__self__`` or its ``module``), if any."""
    if isinstance(score_fn, nn.Module):
        return score_fn
    owner = getattr(score_fn, "__self__", None) or getattr(score_fn, "module", None)
    return owner if isinstance(owner, nn.Module) else None


@contextlib.contextmanager
def eval_mode(score_fn: ScoreFn) -> Iterator[None]:
    """Put the head behind ``score_fn`` in eval mode; restore every submodule's mode after."""
    module = head_module(score_fn)
    if module is None:
        yield
        return
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
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
