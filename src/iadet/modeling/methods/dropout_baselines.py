"""A-Fast-RCNN's non-adversarial dropout baselines (Table 2 and Sec. 5.2.1): ``random-dropout`` and ``hard-dropout``.

Both zero cells (all channels) of the foreground RoIs of ``image_share`` of the images, as the
ASDN does, but without a learned adversary:

* ``random-dropout`` — "we mask the activations of the same number of neurons as we do in the
  ASDN network": ``drop_fraction`` of the ``H x W`` cells (15 of 49) uniformly at random.
* ``hard-dropout`` — "we exhaustively enumerate different kinds of occlusion and select the best
  ones for training in each iteration": every iteration, the sliding-window search of the
  ASDN's pre-training (:func:`~iadet.modeling.methods.asdn.hardest_windows`) picks each RoI's
  mask, the window that lowers its ground-truth probability most.

The mask is a constant; gradients reach the backbone through the unmasked cells. Neither has
parameters, and ``warmup_fraction`` defaults to 0 (masking from the first iteration; set it to
0.125 to mirror the ASDN's detector warm-up).
"""

from __future__ import annotations

from torch import Tensor

from iadet.config.methods import HardDropoutParams, RandomDropoutParams
from iadet.modeling.methods.adversarial import StagedMethod, selected_foreground
from iadet.modeling.methods.asdn import cell_counts, hardest_windows, random_cells, sliding_windows
from iadet.modeling.methods.base import RoIBatch, RoIOutput, ScoreFn


class _DropoutBaseline(StagedMethod):
    def forward(self, features: Tensor, batch: RoIBatch) -> RoIOutput:
        labels, score_fn = batch.labels, batch.head
        if self.stage == "warmup":
            return RoIOutput(features, stats={"adv_rois": 0.0})
        index = selected_foreground(labels, batch, self.iteration, self.params.image_share)
        stats = {"adv_rois": index.numel() / max(features.shape[0], 1)}
        if index.numel() == 0:
            return RoIOutput(features, stats=stats)
        drop = self.drop_mask(features[index].detach(), labels[index], score_fn)  # (n, H, W) bool
        masked = features[index] * (~drop).unsqueeze(1).to(features.dtype)
        return RoIOutput(features.index_copy(0, index, masked), stats=stats)

    def drop_mask(self, features: Tensor, labels: Tensor, score_fn: ScoreFn) -> Tensor:
        raise NotImplementedError


class RandomDropout(_DropoutBaseline, params=RandomDropoutParams):
    """Random spatial dropout of foreground RoI features, as many cells as the ASDN (Table 2)."""

    def drop_mask(self, features: Tensor, labels: Tensor, score_fn: ScoreFn) -> Tensor:
        n, _, h, w = features.shape
        count, _ = cell_counts(h, w, self.params.drop_fraction, 1.0)
        return random_cells(n, h, w, count, features.device)


class HardDropout(_DropoutBaseline, params=HardDropoutParams):
    """Exhaustive hardest-window dropout of foreground RoI features every iteration (Table 2)."""

    def drop_mask(self, features: Tensor, labels: Tensor, score_fn: ScoreFn) -> Tensor:
        _, _, h, w = features.shape
        windows = sliding_windows(h, w, self.params.window_size, self.params.window_stride)
        targets, _ = hardest_windows(features, labels, score_fn, windows)
        return targets.bool()
