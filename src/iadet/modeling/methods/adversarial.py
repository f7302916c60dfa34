"""A-Fast-RCNN's adversarial training (Wang, Shrivastava, Gupta, CVPR 2017): ``asdn``, ``fixed-asdn``,
``astn`` and ``asdn+astn`` on the RoI-pooled features.

One training run does every stage, on the method's own clock; each is a number of iterations of
the run (``train.max_iters``, or ``max_iters`` of :func:`iadet.attach`):

(a) ``warmup`` — the detector trains alone (the paper: 10k iterations);
(b) ``pretrain`` — the detector is frozen (its losses carry zero gradient, and
    :meth:`~iadet.modeling.methods.base.RoIMethod.trains_detector` tells the loop to skip its
    optimiser step) and the ASDN learns the
    hardest sliding-window occlusion of every foreground RoI (Sec. 4.2.1; the paper: 10k, the
    code: 25k); ASTN-only training has no such stage;
(c) ``joint`` — the adversaries modify the foreground RoIs of ``image_share`` of the images (one
    of the two per iteration, Sec. 5.1) and learn from the detector, which learns from them.

Stage lengths are ``method.warmup_iters`` / ``method.pretrain_iters`` when set, otherwise
``warmup_fraction`` / ``pretrain_fraction`` of the run (default 1/8 each, the paper's 10k + 10k
of 80k). The stage iterations count in ``train.max_iters`` and in the detector's learning-rate
schedule (which keeps its clock through stage (b), when the detector does not step); the
adversary has its own SGD optimiser at a constant ``method.lr``. The stage boundaries are
saved with the adversary, so a resume continues the same stages.

Gradient isolation holds by construction: the adversaries read ``features.detach()`` (the
backbone gets nothing from them), and the detector sees the features times a sampled mask (a
constant) rotated by detached angles (the adversaries get nothing from the detector's loss).
The adversaries' own losses are differentiated with respect to the adversaries' parameters only,
and the adversaries take their SGD step inside the forward pass
(:meth:`~iadet.modeling.methods.base.RoIMethod.step_adversary`): the losses never reach the
detector's loss dict, so they cannot reach its parameters in any training loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.distributed as torch_dist
from torch import Tensor, nn

from iadet.config.methods import (
    MethodParams,
    check_in_range,
    check_non_negative,
    check_one_of,
    register_preset,
)
from iadet.errors import ConfigError
from iadet.modeling.backbones import feature_shape
from iadet.modeling.methods.asdn import (
    ASDN,
    cell_counts,
    hardest_windows,
    importance_sample,
    joint_loss,
    meets_drop_rule,
    pretrain_loss,
    sliding_windows,
)
from iadet.modeling.methods.astn import ASTN, ASTN_OBJECTIVES, astn_objective, rotate_channel_blocks
from iadet.modeling.methods.base import RoIBatch, RoIMethod, RoIOutput, ScoreFn
from iadet.modeling.methods.probes import eval_mode, float32_probe, gt_probabilities

STAGES = ("warmup", "pretrain", "joint")


# ----------------------------------------------------------------------------------------------
# stages and the choice of images, shared with the dropout baselines


# ----------------------------------------------------------------------------------------------
# parameters and presets


@dataclass
class ScheduleParams(MethodParams):
    warmup_iters: int | None = None
    """Stage (a), the detector alone, in iterations; ``None``: ``warmup_fraction`` of ``train.max_iters``."""
    warmup_fraction: float = 0.125
    """Stage (a) as a fraction of the run (the paper: 10k of 80k)."""
    image_share: float = 0.5
    """Share of each iteration's images whose foreground RoIs are modified (the paper and code: 1 of 2)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_in_range(self, ("image_share", "warmup_fraction"))
        check_non_negative(self, ("warmup_iters",))


@dataclass
class AdversaryParams(ScheduleParams):
    lr: float = 0.001
    """The adversary's SGD learning rate, constant (the code's solver: 0.001)."""
    momentum: float = 0.9
    """The adversary's SGD momentum (the code's solver)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_non_negative(self, ("lr", "momentum"))


@dataclass
class ASDNParams(AdversaryParams):
    """``method.*`` for ``asdn`` / ``fixed-asdn`` (defaults: the released code)."""

    pretrain_iters: int | None = None
    """Stage (b), ASDN pre-training with the detector frozen; ``None``: ``pretrain_fraction`` of the run."""
    pretrain_fraction: float = 0.125
    """Stage (b) as a fraction of the run (the paper: 10k of 80k; the code: 25k)."""
    width: int = 256
    """Channels of the ASDN's four 3x3 conv layers."""
    window_size: int = 0
    """Stage (b) occlusion window side in cells; 0: ``round(d / 3)`` (2 on 7 x 7)."""
    window_stride: int = 0
    """Stage (b) window stride; 0: the window size (16 windows on 7 x 7, as the code)."""
    drop_fraction: float = 15 / 49
    """Cells dropped per mask, as a fraction of ``H * W`` (the code: 15 of 49; the paper: 1/3)."""
    pool_fraction: float = 20 / 49
    """The top cells of the heat-map they are drawn from (the code: 20 of 49; the paper: 1/2)."""
    drop_threshold: float = 0.1
    """A sampled mask teaches the ASDN only if ``p_after[gt] + drop_threshold < p_before[gt]`` (the code)."""
    loss_weight: float = 0.0025
    """Weight of the ASDN's joint-stage loss (the code)."""
    pretrain_loss_weight: float = 1.0
    """Weight of the ASDN's pre-training loss (the code)."""
    weight_decay: float = 0.0005
    """On the ASDN's conv weights (the code's solver; biases: none, and twice the learning rate, as Caffe's)."""
    joint_update: bool = True
    """Train the ASDN in stage (c); ``false`` is ``fixed-asdn`` (Table 2: frozen after pre-training)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_in_range(self, ("pretrain_fraction", "drop_fraction", "pool_fraction"))
        check_non_negative(self, ("pretrain_iters", "window_size", "window_stride", "weight_decay"))
        if self.width < 1:
            raise ConfigError(f"method.width must be >= 1, got {self.width}")


@dataclass
class ASTNParams(AdversaryParams):
    """``method.*`` for ``astn`` (the paper's Sec. 4.2.2; no released code)."""

    blocks: int = 4
    """Channel blocks, each with its own angle (the paper: 4)."""
    max_angle: float = 10.0
    """Bound on each angle in degrees (the paper: 10, clockwise and anti-clockwise)."""
    hidden: int = 0
    """Width of the localisation network's hidden layers; 0: the box head's (``fc6`` out), else 1024."""
    pool: int = 7
    """The localisation network reads the features average-pooled to at most ``pool x pool`` (a C4
    head's 14 x 14 -> 7 x 7); 0: never pooled."""
    init_from_head: bool = True
    """Initialise its first two layers from the box head's ``fc6``/``fc7`` when the shapes fit."""
    objective: str = "background"
    """``background``: push the foreground RoIs to the background class, as the ASTN section says (Sec. 4.2.2);
    ``max-loss``: maximise the detector's classification loss (the general objective of Sec. 3)."""
    astn_loss_weight: float = 1.0
    """Weight of the ASTN's loss."""
    astn_lr: float | None = None
    """The ASTN's learning rate; ``None``: ``method.lr``. Its last layer starts at zero (the identity),
    so the angles grow from 0 as it learns; short runs may want more than 0.001."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_one_of(self, "objective", ASTN_OBJECTIVES)
        if self.blocks < 1:
            raise ConfigError(f"method.blocks must be at least 1, got {self.blocks}")
        check_non_negative(self, ("max_angle", "hidden", "pool", "astn_lr"))


@dataclass
class FusionParams(ASDNParams, ASTNParams):
    """``method.*`` for ``asdn+astn``: every ASDN and ASTN parameter."""


register_preset(
    "asdn",
    ASDNParams,
    doc="A-Fast-RCNN ASDN: warm-up, ASDN pre-training, joint adversarial dropout (the released code)",
    family="A-Fast-RCNN",
)
register_preset(
    "fixed-asdn",
    ASDNParams,
    defaults={"joint_update": False},
    doc="A-Fast-RCNN ASDN frozen after pre-training (Table 2's 'fixed ASDN')",
    family="A-Fast-RCNN",
)
register_preset(
    "astn",
    ASTNParams,
    doc="A-Fast-RCNN ASTN: adversarial rotation of 4 channel blocks, +-10 degrees",
    family="A-Fast-RCNN",
)
register_preset(
    "asdn+astn",
    FusionParams,
    doc="A-Fast-RCNN full model: ASDN mask then ASTN rotation",
    family="A-Fast-RCNN",
)


# ----------------------------------------------------------------------------------------------


def stage_bounds(
    max_iters: int,
    warmup_iters: int | None,
    warmup_fraction: float,
    pretrain_iters: int | None = 0,
    pretrain_fraction: float = 0.0,
) -> tuple[int, int]:
    """``(warmup_end, pretrain_end)``: stage (a) is ``[0, warmup_end)``, (b) ``[warmup_end, pretrain_end)``."""
    warmup = warmup_iters if warmup_iters is not None else round(warmup_fraction * max_iters)
    pretrain = pretrain_iters if pretrain_iters is not None else round(pretrain_fraction * max_iters)
    warmup, pretrain = max(int(warmup), 0), max(int(pretrain), 0)
    return warmup, warmup + pretrain


def adversarial_images(iteration: int, num_images: int, share: float) -> list[bool]:
    """Which images of this iteration get the adversarial examples: ``share`` of them, spread evenly.

    Image ``b`` of the iteration is number ``k`` in the stream of all images (over DDP ranks);
    it is chosen when ``floor((k + 1) * share) > floor(k * share)``. ``share=0.5`` with two images
    per iteration chooses the second, as the paper keeps "one image in the batch without any
    adversarial occlusions/deformations"; with one image, every other iteration. Deterministic
    in the iteration, so a resume makes the same choices.
    """
    rank, world = (
        (torch_dist.get_rank(), torch_dist.get_world_size()) if torch_dist.is_initialized() else (0, 1)
    )
    out = []
    for b in range(num_images):
        k = (iteration * world + rank) * num_images + b
        out.append(math.floor((k + 1) * share + 1e-9) > math.floor(k * share + 1e-9))
    return out


def selected_foreground(labels: Tensor, batch: RoIBatch, iteration: int, share: float) -> Tensor:
    """Indices ``(n,)`` of the foreground RoIs of the images :func:`adversarial_images` chooses."""
    chosen = torch.tensor(
        adversarial_images(iteration, len(batch.proposals), share), dtype=torch.bool, device=labels.device
    )
    return torch.nonzero(chosen[batch.image_index] & (labels > 0)).squeeze(1)


class StagedMethod(RoIMethod):
    """A method that runs in stages (``warmup`` -> ``pretrain`` -> ``joint``) over one training run.

    Its parameters are a :class:`~iadet.config.methods.ScheduleParams`. The stage follows the
    method's own clock; :meth:`trains_detector` is false during ``pretrain``, and the stage
    boundaries are part of its state (a resume keeps them).
    """

    params: ScheduleParams

    def __init__(self, params: ScheduleParams | None = None) -> None:
        super().__init__(params)
        self.stage = "warmup"
        self._bounds: tuple[int, int] | None = None
        self._bounds_key: list[Any] | None = None

    def _schedule_key(self) -> list[Any]:
        p = self.params
        return [
            p.warmup_iters,
            p.warmup_fraction,
            getattr(p, "pretrain_iters", 0),
            getattr(p, "pretrain_fraction", 0.0),
        ]

    def needs_max_iters(self) -> bool:
        warmup, warmup_fraction, pretrain, pretrain_fraction = self._schedule_key()
        return (warmup is None and warmup_fraction > 0) or (pretrain is None and pretrain_fraction > 0)

    def stage_bounds(self) -> tuple[int, int]:
        """``(warmup_end, pretrain_end)`` for this run (fixed at the first step, kept across resumes
        while the stage parameters are unchanged)."""
        key = self._schedule_key()
        if self._bounds is None or self._bounds_key != key:
            self._bounds = stage_bounds(self.max_iters or 1, *key)
            self._bounds_key = key
        return self._bounds

    def stage_at(self, iteration: int) -> str:
        """The stage of step ``iteration``: ``warmup``, ``pretrain`` or ``joint``."""
        warmup_end, pretrain_end = self.stage_bounds()
        return "warmup" if iteration < warmup_end else "pretrain" if iteration < pretrain_end else "joint"

    def start_iteration(self, iteration: int, max_iters: int) -> None:
        self.stage = self.stage_at(iteration)

    def detector_frozen_at(self, iteration: int) -> bool:
        """True while only the adversary trains (A-Fast-RCNN's ASDN pre-training, stage (b))."""
        return self.stage_at(iteration) == "pretrain"

    def training_state(self) -> dict[str, Any]:
        bounds = list(self._bounds) if self._bounds is not None else None
        return {"stage": self.stage, "bounds": bounds, "schedule": self._bounds_key}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Keep the saved stage boundaries while the stage parameters are unchanged (a resume with a
        longer ``max_iters`` does not move them)."""
        if state.get("bounds") is not None:
            self._bounds = (int(state["bounds"][0]), int(state["bounds"][1]))
            self._bounds_key = list(state["schedule"])
        self.stage = str(state.get("stage", self.stage))


def _zero_loss(module: nn.Module) -> Tensor:
    """A zero that depends on every parameter of ``module``: every rank of a DDP run then has a
    gradient (zeros) to average, even with no foreground RoI. ``(p * 0).sum()``,
    not ``p.sum() * 0``: its gradients are dense tensors, not expanded views."""
    return sum((p * 0.0).sum() for p in module.parameters())


# ----------------------------------------------------------------------------------------------
# the method


class AdversarialMethod(StagedMethod):
    """A-Fast-RCNN: hard positives from adversaries on the RoI features (ASDN, ASTN or both)."""

    uses_asdn: ClassVar[bool] = True
    uses_astn: ClassVar[bool] = True

    def __init__(self, params: Any = None) -> None:
        super().__init__(params)
        self.asdn: ASDN | None = None
        self.astn: ASTN | None = None
        self._windows: dict[tuple[int, int], Tensor] = {}

    # --- the adversary ----------------------------------------------------------------------
    def setup(self, model: nn.Module) -> None:
        """Size the adversaries to the detector's pooled RoI features ``(C, H, W)``."""
        c, h, w = feature_shape(model)
        p = self.params
        if self.uses_asdn:
            self.asdn = ASDN(c, p.width)
        if self.uses_astn:
            head = model.roi_heads.box_head
            fc6 = getattr(head, "fc6", None)
            hidden = p.hidden or (fc6.out_features if isinstance(fc6, nn.Linear) else 1024)
            ph, pw = ASTN.input_size(h, w, p.pool)
            self.astn = ASTN(c * ph * pw, hidden, p.blocks, p.max_angle, p.pool)
            if p.init_from_head:
                self.astn.init_from_head(head)

    def make_adversary_optimizer(self) -> torch.optim.Optimizer | None:
        """SGD over the adversaries (the code's solver), or ``None`` when there is none."""
        p = self.params
        groups = []
        if self.asdn is not None:
            weights = [q for q in self.asdn.parameters() if q.dim() > 1]
            biases = [q for q in self.asdn.parameters() if q.dim() <= 1]
            groups += [
                {"params": weights, "lr": p.lr, "weight_decay": p.weight_decay},
                {"params": biases, "lr": 2 * p.lr, "weight_decay": 0.0},
            ]
        if self.astn is not None:
            # no weight decay: during ASDN pre-training the idle ASTN gets zero gradients
            # (RoIMethod.step_adversary), and decay would then shrink it
            lr = p.astn_lr if p.astn_lr is not None else p.lr
            groups.append({"params": list(self.astn.parameters()), "lr": lr, "weight_decay": 0.0})
        return torch.optim.SGD(groups, lr=p.lr, momentum=p.momentum) if groups else None

    # --- forward: the method on the RoI features -------------------------------------------------------------------------
    def forward(self, features: Tensor, batch: RoIBatch) -> RoIOutput:
        labels, score_fn = batch.labels, batch.head
        out = RoIOutput(features, stats={"adv_stage": float(STAGES.index(self.stage))})
        if self.stage == "pretrain" and self.asdn is not None:
            self._pretrain_asdn(features, labels, score_fn, out)
        elif self.stage == "joint":
            out.features = self._joint(features, labels, score_fn, batch, out)
        return out

    def windows(self, height: int, width: int) -> Tensor:
        key = (height, width)
        if key not in self._windows:
            self._windows[key] = sliding_windows(
                height, width, self.params.window_size, self.params.window_stride
            )
        return self._windows[key]

    def _pretrain_asdn(self, features: Tensor, labels: Tensor, score_fn: ScoreFn, out: RoIOutput) -> None:
        """Stage (b): every foreground RoI's hardest window is the ASDN's target (Eq. 1); adds to ``out``."""
        assert self.asdn is not None
        fg = torch.nonzero(labels > 0).squeeze(1)
        x = features[fg].detach().float()
        _, _, h, w = features.shape
        with torch.enable_grad(), float32_probe(features.device.type):
            if fg.numel() == 0:
                loss = _zero_loss(self.asdn)
            else:
                targets, p_min = hardest_windows(x, labels[fg], score_fn, self.windows(h, w))
                loss = pretrain_loss(self.asdn(x), targets)
                out.stats["asdn_target_p"] = float(p_min.mean())
            out.losses["loss_asdn"] = self.params.pretrain_loss_weight * loss
        out.stats["asdn_rois"] = float(fg.numel())

    def _joint(
        self, features: Tensor, labels: Tensor, score_fn: ScoreFn, batch: RoIBatch, out: RoIOutput
    ) -> Tensor:
        """Stage (c): mask (ASDN) and rotate (ASTN) the chosen foreground RoIs; the adversaries' losses
        and statistics go to ``out``; returns the detector's features."""
        p = self.params
        n_all, _, h, w = features.shape
        index = selected_foreground(labels, batch, self.iteration, p.image_share)
        n = index.numel()
        x = features[index].detach().float()  # the adversaries' input: no gradient to the backbone
        fg_labels = labels[index]
        keep = None
        with float32_probe(features.device.type), torch.enable_grad():
            if self.asdn is not None:
                train_asdn = p.joint_update
                with torch.set_grad_enabled(train_asdn):
                    logits = self.asdn(x)
                drop_count, pool_count = cell_counts(h, w, p.drop_fraction, p.pool_fraction)
                drop = importance_sample(logits, drop_count, pool_count)
                keep = (~drop).unsqueeze(1).float()  # (n, 1, H, W), a constant
                if train_asdn:
                    out.losses["loss_asdn"] = p.loss_weight * self._asdn_joint_loss(
                        x, keep, drop, logits, fg_labels, score_fn, n_all, out.stats
                    )
                x = x * keep
            if self.astn is not None:
                angles = self.astn(x)
                if n:
                    with eval_mode(score_fn):
                        logits_cls = score_fn(rotate_channel_blocks(x, angles)).float()
                    loss = astn_objective(logits_cls, fg_labels, p.objective)
                else:
                    loss = _zero_loss(self.astn)
                out.losses["loss_astn"] = p.astn_loss_weight * loss
                if n:
                    out.stats["astn_abs_angle"] = math.degrees(float(angles.detach().abs().mean()))
        out.stats["adv_rois"] = n / max(n_all, 1)
        if n == 0:
            return features
        # the detector's examples: live features (gradients reach the backbone) times a constant mask,
        # rotated by detached angles
        adversarial = features[index]
        if keep is not None:
            adversarial = adversarial * keep.to(adversarial.dtype)
        if self.astn is not None:
            adversarial = rotate_channel_blocks(adversarial, angles.detach())
        return features.index_copy(0, index, adversarial)

    def _asdn_joint_loss(
        self,
        x: Tensor,
        keep: Tensor,
        drop: Tensor,
        logits: Tensor,
        labels: Tensor,
        score_fn: ScoreFn,
        n_all: int,
        stats: dict[str, float],
    ) -> Tensor:
        """Eq. 1 on the sampled masks that lowered ``p[gt]`` by more than ``drop_threshold``, summed
        and divided by all ``n_all`` sampled RoIs of the iteration times the cells: the released code
        divides by the RoIs of the masked image, and Caffe's ``iter_size: 2`` halves that again."""
        assert self.asdn is not None
        if x.shape[0] == 0:
            return _zero_loss(self.asdn)
        p_before = gt_probabilities(x, labels, score_fn)
        p_after = gt_probabilities(x * keep, labels, score_fn)
        valid = meets_drop_rule(p_before, p_after, self.params.drop_threshold)
        _, _, h, w = x.shape
        stats["asdn_valid"] = float(valid.float().mean())
        stats["asdn_p_drop"] = float((p_before - p_after).mean())
        return joint_loss(logits, drop, valid, n_all * h * w)


class ASDNMethod(AdversarialMethod, params=ASDNParams):
    """A-Fast-RCNN's ASDN: adversarial spatial dropout of foreground RoI features (Sec. 4.2.1)."""

    uses_asdn = True
    uses_astn = False


class ASTNMethod(AdversarialMethod, params=ASTNParams):
    """A-Fast-RCNN's ASTN: adversarial rotation of channel blocks of foreground RoI features (Sec. 4.2.2)."""

    uses_asdn = False
    uses_astn = True


class FusionMethod(AdversarialMethod, params=FusionParams):
    """A-Fast-RCNN's full model: the ASDN's mask, then the ASTN's rotation, on the same features (Sec. 4.2.3)."""
