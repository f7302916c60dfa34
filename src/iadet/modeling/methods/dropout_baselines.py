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

from dataclasses import dataclass

from torch import Tensor

from iadet.config.methods import check_in_range, check_non_negative, register_preset
from iadet.modeling.methods.adversarial import ScheduleParams, StagedMethod, selected_foreground
from iadet.modeling.methods.asdn import cell_counts, hardest_windows, random_cells, sliding_windows
from iadet.modeling.methods.base import RoIBatch, RoIOutput, ScoreFn

# ----------------------------------------------------------------------------------------------
# parameters and presets


@dataclass
class RandomDropoutParams(ScheduleParams):
    """``method.*`` for ``random-dropout``."""

    warmup_fraction: float = 0.0
    """Iterations before masking starts, as a fraction of the run (0: from the first; 0.125: the ASDN's warm-up)."""
    drop_fraction: float = 15 / 49
    """Cells dropped per foreground RoI, as a fraction of ``H * W`` (the ASDN's count: 15 of 49)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_in_range(self, ("drop_fraction",))


@dataclass
class HardDropoutParams(ScheduleParams):
    """``method.*`` for ``hard-dropout``."""

    warmup_fraction: float = 0.0
    """Iterations before masking starts, as a fraction of the run (0: from the first; 0.125: the ASDN's warm-up)."""
    window_size: int = 0
    """Occlusion window side in cells; 0: ``round(d / 3)`` (2 on 7 x 7)."""
    window_stride: int = 0
    """Window stride; 0: the window size (16 windows on 7 x 7)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_non_negative(self, ("window_size", "window_stride"))


register_preset(
    "random-dropout",
    RandomDropoutParams,
    doc="A-Fast-RCNN baseline: random spatial dropout, as many cells as ASDN",
    family="A-Fast-RCNN",
)
register_preset(
    "hard-dropout",
    HardDropoutParams,
    doc="A-Fast-RCNN baseline: the hardest sliding-window dropout, every iteration",
    family="A-Fast-RCNN",
)


# ----------------------------------------------------------------------------------------------


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
