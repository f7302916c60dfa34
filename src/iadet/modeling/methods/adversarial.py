"""A-Fast-RCNN's adversarial training (Wang, Shrivastava, Gupta, CVPR 2017): ``asdn``, ``fixed-asdn``,
``astn`` and ``asdn+astn`` on the RoI-feature hook.

One ``iadet train`` run does every stage; each is a number of iterations of ``train.max_iters``:

(a) ``warmup`` — the detector trains alone (the paper: 10k iterations);
(b) ``pretrain`` — the detector is frozen (the engine skips its update) and the ASDN learns the
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
The adversaries' own losses go to ``batch.adversary_losses``, which the engine differentiates
with respect to the adversaries' parameters only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.distributed as torch_dist
from torch import Tensor, nn

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
from iadet.modeling.methods.astn import ASTN, OBJECTIVES, astn_objective, rotate_channel_blocks
from iadet.modeling.methods.base import RoIBatch, RoIMethod, ScoreFn, register_method
from iadet.modeling.methods.head import eval_mode, float32_probe, gt_probabilities

STAGES = ("warmup", "pretrain", "joint")


# ----------------------------------------------------------------------------------------------
# stages and the choice of images, shared with the dropout baselines


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


@dataclass
class ScheduleParams:
    warmup_iters: int | None = None
    """Stage (a), the detector alone, in iterations; ``None``: ``warmup_fraction`` of ``train.max_iters``."""
    warmup_fraction: float = 0.125
    """Stage (a) as a fraction of the run (the paper: 10k of 80k)."""
    image_share: float = 0.5
    """Share of each iteration's images whose foreground RoIs are modified (the paper and code: 1 of 2)."""


class StagedMethod(RoIMethod):
    """A method that runs in stages (``warmup`` -> ``pretrain`` -> ``joint``) over one training run."""

    def __init__(self, params: Any = None) -> None:
        super().__init__(params)
        p = self.params
        if not 0.0 <= p.image_share <= 1.0:
            raise ConfigError(f"method.image_share must be in [0, 1], got {p.image_share}")
        for key in ("warmup_fraction", "pretrain_fraction"):
            if not 0.0 <= getattr(p, key, 0.0) <= 1.0:
                raise ConfigError(f"method.{key} must be in [0, 1], got {getattr(p, key)}")
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

    def start_iteration(self, iteration: int, max_iters: int) -> None:
        super().start_iteration(iteration, max_iters)
        key = self._schedule_key()
        if self._bounds is None or self._bounds_key != key:
            self._bounds = stage_bounds(max_iters, *key)
            self._bounds_key = key
        warmup_end, pretrain_end = self._bounds
        self.stage = (
            "warmup" if iteration < warmup_end else "pretrain" if iteration < pretrain_end else "joint"
        )

    def trains_detector(self) -> bool:
        return self.stage != "pretrain"

    def extra_state(self) -> dict[str, Any]:
        bounds = list(self._bounds) if self._bounds is not None else None
        return {"stage": self.stage, "bounds": bounds, "schedule": self._bounds_key}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Keep the saved stage boundaries while the stage parameters are unchanged (a resume with a
        longer ``train.max_iters`` does not move them)."""
        if state.get("bounds") is not None:
            self._bounds = (int(state["bounds"][0]), int(state["bounds"][1]))
            self._bounds_key = list(state["schedule"])
        self.stage = str(state.get("stage", self.stage))


def _zero_loss(module: nn.Module) -> Tensor:
    """A zero that depends on every parameter of ``module``: every rank of a DDP run then has a
    gradient (zeros) for the engine to average, even with no foreground RoI. ``(p * 0).sum()``,
    not ``p.sum() * 0``: its gradients are dense tensors, not expanded views."""
    return sum((p * 0.0).sum() for p in module.parameters())


# ----------------------------------------------------------------------------------------------
# parameters


@dataclass
class AdversaryParams(ScheduleParams):
    lr: float = 0.001
    """The adversary's SGD learning rate, constant (the code's solver: 0.001)."""
    momentum: float = 0.9
    """The adversary's SGD momentum (the code's solver)."""


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
    objective: str = "max-loss"
    """``max-loss``: maximise the detector's classification loss (Sec. 3); ``background``: push the
    foreground RoIs to the background class (Sec. 4.2.2)."""
    astn_loss_weight: float = 1.0
    """Weight of the ASTN's loss."""
    astn_lr: float | None = None
    """The ASTN's learning rate; ``None``: ``method.lr``. Its last layer starts at zero (the identity),
    so the angles grow from 0 as it learns; short runs may want more than 0.001."""


@dataclass
class FusionParams(ASDNParams, ASTNParams):
    """``method.*`` for ``asdn+astn``: every ASDN and ASTN parameter."""


# ----------------------------------------------------------------------------------------------
# the method


class AdversarialMethod(StagedMethod):
    """A-Fast-RCNN: hard positives from adversaries on the RoI features (ASDN, ASTN or both)."""

    Params: ClassVar[type] = FusionParams
    uses_asdn: ClassVar[bool] = True
    uses_astn: ClassVar[bool] = True

    def __init__(self, params: Any = None) -> None:
        super().__init__(params)
        p = self.params
        if self.uses_astn and p.objective not in OBJECTIVES:
            raise ConfigError(
                f"method.objective: unknown value '{p.objective}' (valid: {', '.join(OBJECTIVES)})"
            )
        if self.uses_asdn:
            for key in ("drop_fraction", "pool_fraction"):
                if not 0.0 <= getattr(p, key) <= 1.0:
                    raise ConfigError(f"method.{key} must be in [0, 1], got {getattr(p, key)}")
        if self.uses_astn and p.blocks < 1:
            raise ConfigError(f"method.blocks must be at least 1, got {p.blocks}")
        self.asdn: ASDN | None = None
        self.astn: ASTN | None = None
        self._windows: dict[tuple[int, int], Tensor] = {}

    # --- the engine's view ----------------------------------------------------------------
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
            # no weight decay: during ASDN pre-training the engine hands the idle ASTN zero
            # gradients, and decay would then shrink it
            lr = p.astn_lr if p.astn_lr is not None else p.lr
            groups.append({"params": list(self.astn.parameters()), "lr": lr, "weight_decay": 0.0})
        return torch.optim.SGD(groups, lr=p.lr, momentum=p.momentum) if groups else None

    # --- the hook -------------------------------------------------------------------------
    def forward(self, features: Tensor, labels: Tensor, score_fn: ScoreFn, batch: RoIBatch) -> Tensor:
        batch.stats["adv_stage"] = float(STAGES.index(self.stage))
        if self.stage == "warmup":
            return features
        if self.stage == "pretrain":
            if self.asdn is not None:
                self._pretrain_asdn(features, labels, score_fn, batch)
            return features
        return self._joint(features, labels, score_fn, batch)

    def windows(self, height: int, width: int) -> Tensor:
        key = (height, width)
        if key not in self._windows:
            self._windows[key] = sliding_windows(
                height, width, self.params.window_size, self.params.window_stride
            )
        return self._windows[key]

    def _pretrain_asdn(self, features: Tensor, labels: Tensor, score_fn: ScoreFn, batch: RoIBatch) -> None:
        """Stage (b): every foreground RoI's hardest window is the ASDN's target (Eq. 1)."""
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
                batch.stats["asdn_target_p"] = float(p_min.mean())
            batch.adversary_losses["loss_asdn"] = self.params.pretrain_loss_weight * loss
        batch.stats["asdn_rois"] = float(fg.numel())

    def _joint(self, features: Tensor, labels: Tensor, score_fn: ScoreFn, batch: RoIBatch) -> Tensor:
        """Stage (c): mask (ASDN) and rotate (ASTN) the chosen foreground RoIs; train the adversaries."""
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
                    batch.adversary_losses["loss_asdn"] = p.loss_weight * self._asdn_joint_loss(
                        x, keep, drop, logits, fg_labels, score_fn, n_all, batch
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
                batch.adversary_losses["loss_astn"] = p.astn_loss_weight * loss
                if n:
                    batch.stats["astn_abs_angle"] = math.degrees(float(angles.detach().abs().mean()))
        batch.stats["adv_rois"] = n / max(n_all, 1)
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
        batch: RoIBatch,
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
        batch.stats["asdn_valid"] = float(valid.float().mean())
        batch.stats["asdn_p_drop"] = float((p_before - p_after).mean())
        return joint_loss(logits, drop, valid, n_all * h * w)


class ASDNMethod(AdversarialMethod):
    """A-Fast-RCNN's ASDN: adversarial spatial dropout of foreground RoI features (Sec. 4.2.1)."""

    Params = ASDNParams
    uses_asdn = True
    uses_astn = False


class ASTNMethod(AdversarialMethod):
    """A-Fast-RCNN's ASTN: adversarial rotation of channel blocks of foreground RoI features (Sec. 4.2.2)."""

    Params = ASTNParams
    uses_asdn = False
    uses_astn = True


class FusionMethod(AdversarialMethod):
    """A-Fast-RCNN's full model: the ASDN's mask, then the ASTN's rotation, on the same features (Sec. 4.2.3)."""

    Params = FusionParams


register_method(
    "asdn", doc="A-Fast-RCNN ASDN: warm-up, ASDN pre-training, joint adversarial dropout (the released code)"
)(ASDNMethod)
register_method(
    "fixed-asdn",
    defaults={"joint_update": False},
    doc="A-Fast-RCNN ASDN frozen after pre-training (Table 2's 'fixed ASDN')",
)(ASDNMethod)
register_method("astn", doc="A-Fast-RCNN ASTN: adversarial rotation of 4 channel blocks, +-10 degrees")(
    ASTNMethod
)
register_method("asdn+astn", doc="A-Fast-RCNN full model: ASDN mask then ASTN rotation")(FusionMethod)
