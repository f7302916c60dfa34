"""Inverted Attention (Huang, Ke, Huang: "Improving Object Detection with Inverted Attention").

During training, for the RoI-pooled features ``F`` ``(N, C, H, W)``:

1. ``G = dS_gt / dF`` — the gradient of each RoI's ground-truth class score (pre-softmax logit,
   background included) with respect to ``F`` (:func:`gt_score_gradients`; Algorithm 1, line 4).
2. ``w = mean_hw(G)`` ``(N, C)`` and ``M = sum_c w_c F_c`` ``(N, H, W)`` — Grad-CAM without ReLU (Eq. 1).
3. The inverted attention ``A`` zeroes the most attended cells (Eq. 2) on the most sensitive
   channels (Eq. 3), combined by Eq. 4 (:func:`inverted_attention_mask`).
4. ``F_new = F * A`` (Eq. 7) for the selected RoIs; ``A`` is a constant, so gradients reach the
   backbone through ``F``. Nothing changes at inference.

Two presets: ``ia`` (the paper's text, Sec. 4.1.2) and ``ia-code`` (the authors' released code,
which differs: spatial only, 18 of 49 cells, RoIs chosen by their confidence drop).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
from iadet.modeling.methods.base import RoIBatch, RoIMethod, RoIOutput, ScoreFn
from iadet.modeling.methods.probes import eval_mode, float32_probe, gt_probabilities, pool_rois
from iadet.training_hooks import HookBase

# ----------------------------------------------------------------------------------------------
# Eq. 1-4 as functions of tensors


# ----------------------------------------------------------------------------------------------
# parameters and presets


IA_STRATEGIES = ("soft", "hard", "overturn", "random")
IA_ORIENTATIONS = ("spatial", "channel", "spatial+channel")
IA_SELECTIONS = ("random", "drop", "all")
IA_RAMPS = ("constant", "warmup", "triangle")


@dataclass
class IAParams(MethodParams):
    """``method.*`` for ``ia`` / ``ia-code`` (every key overridable with ``--set method.<key>=...``)."""

    strategy: str = "soft"
    """``soft`` (top-k), ``hard`` (0.5 on min-max normalised), ``overturn`` (1 - A), ``random`` (Table 2)."""
    orientation: str = "spatial+channel"
    """``spatial``, ``channel`` or ``spatial+channel`` (Table 3)."""
    spatial_ratio: float = 1 / 3
    """Fraction of the H x W cells inverted per RoI (the paper: 33%; the code: 18/49)."""
    channel_ratio: float = 0.8
    """Fraction of channels (largest ``w``) handed to the spatial inversion by Eq. 4 (the paper: 80%)."""
    select: str = "random"
    """Which RoIs get IA: ``random`` (``roi_ratio`` of all sampled RoIs, the paper), ``drop`` (largest
    confidence drop, the code), ``all``."""
    roi_ratio: float = 0.2
    """``select=random``: fraction of the sampled RoIs inverted (the paper: 20%)."""
    fg_ratio: float = 0.2
    """``select=drop``: fraction of foreground RoIs (the code: top 20% by drop)."""
    bg_ratio: float = 1 / 30
    """``select=drop``: fraction of background RoIs (the code: top 1/30 by drop)."""
    drop_offset: float = 0.01
    """``select=drop``: ``change = p_before[gt] - p_after[gt] - drop_offset`` (the code: 0.01)."""
    ramp: str = "constant"
    """Schedule of the selected fraction: ``constant``, ``warmup`` (0 -> full over ``ramp_iters``), or
    ``triangle`` (0 -> full at mid-training -> 0, as MAL ramps its masked ratio)."""
    ramp_iters: int = 0
    """``ramp=warmup``: iterations of the linear warm-up."""
    save_attention_every: int = 0
    """Every N iterations record the attention ``M`` (Eq. 1) of fixed RoIs, the ground-truth boxes of the
    first training batch, into the checkpoint for ``iadet visualize evolution`` (Fig. 5); 0 = off."""
    save_attention_rois: int = 8
    """``save_attention_every``: how many ground-truth boxes to follow."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_one_of(self, "strategy", IA_STRATEGIES)
        check_one_of(self, "orientation", IA_ORIENTATIONS)
        check_one_of(self, "select", IA_SELECTIONS)
        check_one_of(self, "ramp", IA_RAMPS)
        check_in_range(self, ("spatial_ratio", "channel_ratio", "roi_ratio", "fg_ratio", "bg_ratio"))
        check_non_negative(self, ("ramp_iters", "save_attention_every"))
        if self.save_attention_rois < 1:
            raise ConfigError(f"method.save_attention_rois must be >= 1, got {self.save_attention_rois}")


register_preset(
    "ia",
    IAParams,
    doc="Inverted Attention as the paper describes it (soft, spatial+channel, 20% of RoIs)",
    family="Inverted Attention",
)
register_preset(
    "ia-code",
    IAParams,
    defaults={
        "strategy": "soft",
        "orientation": "spatial",
        "spatial_ratio": 18 / 49,
        "select": "drop",
        "fg_ratio": 0.2,
        "bg_ratio": 1 / 30,
        "drop_offset": 0.01,
    },
    doc="Inverted Attention as the authors' released code does it (spatial, 18/49 cells, confidence-drop RoIs)",
    family="Inverted Attention",
)


# ----------------------------------------------------------------------------------------------


def _gt_logits_and_gradients(features: Tensor, labels: Tensor, score_fn: ScoreFn) -> tuple[Tensor, Tensor]:
    """``(logits (N, K+1), dS_gt/dF (N, C, H, W))``, both float32 and detached."""
    probe = features.detach().float().requires_grad_(True)
    with eval_mode(score_fn), float32_probe(features.device.type), torch.enable_grad():
        logits = score_fn(probe).float()
        score = logits.gather(1, labels.view(-1, 1).long()).sum()
        (grads,) = torch.autograd.grad(score, probe)
    return logits.detach(), grads.detach()


def gt_score_gradients(features: Tensor, labels: Tensor, score_fn: ScoreFn) -> Tensor:
    """The gradient of ``sum_n score_fn(F)[n, labels[n]]`` with respect to ``F`` (Algorithm 1, line 4).

    Args:
        features: ``(N, C, H, W)`` RoI features, any float dtype; need not require grad.
        labels: ``(N,)`` int64 ground-truth classes, 0 = background (its logit is used too).
        score_fn: maps ``(N, C, H, W)`` features to ``(N, K + 1)`` pre-softmax class logits.

    Returns:
        ``(N, C, H, W)`` float32, detached. The head behind ``score_fn`` runs in eval mode
        (dropout off, as the authors' code) and float32 (autocast off); its mode is restored and
        no parameter's ``.grad`` is touched (``torch.autograd.grad`` with respect to ``F`` only).
    """
    if features.shape[0] == 0:
        return torch.zeros(features.shape, dtype=torch.float32, device=features.device)
    return _gt_logits_and_gradients(features, labels, score_fn)[1]


def attention_weights(features: Tensor, grads: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 1: channel weights ``w = mean_hw(G)`` ``(N, C)`` and attention ``M = sum_c w_c F_c`` ``(N, H, W)``."""
    w = grads.float().mean(dim=(2, 3))
    attention = torch.einsum("nc,nchw->nhw", w, features.float())
    return w, attention


def _top_k_zero(values: Tensor, k: int) -> Tensor:
    """Per row of ``values`` ``(N, L)``: 0 at the ``k`` largest entries, 1 elsewhere."""
    mask = torch.ones_like(values)
    if k > 0:
        idx = values.topk(min(k, values.shape[1]), dim=1).indices
        mask.scatter_(1, idx, 0.0)
    return mask


def _random_k_zero(values: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """Per row: 0 at ``k`` uniformly random entries, 1 elsewhere."""
    mask = torch.ones_like(values)
    if k > 0:
        device = generator.device if generator is not None else values.device
        noise = torch.rand(values.shape, generator=generator, device=device).to(values.device)
        mask.scatter_(1, noise.topk(min(k, values.shape[1]), dim=1).indices, 0.0)
    return mask


def _normalise(values: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row min-max normalisation to [0, 1]; also the rows that are constant."""
    low = values.min(dim=1, keepdim=True).values
    high = values.max(dim=1, keepdim=True).values
    span = high - low
    constant = span <= 0
    return (values - low) / torch.where(constant, torch.ones_like(span), span), constant


def _inversion(values: Tensor, ratio: float, strategy: str, generator: torch.Generator | None) -> Tensor:
    """One inverted-attention vector per row of ``values`` ``(N, L)`` (Eq. 2 / Eq. 3 and the variants)."""
    k = round(ratio * values.shape[1])  # Python's round, as specified
    if strategy == "soft":
        return _top_k_zero(values, k)
    if strategy == "random":
        return _random_k_zero(values, k, generator)
    normalised, constant = _normalise(values)
    if strategy == "hard":
        inverted = (normalised <= 0.5).to(values.dtype)
    else:  # overturn: IA = 1 - A (Sec. 4.3.1)
        inverted = 1.0 - normalised
    return torch.where(constant, torch.ones_like(inverted), inverted)


def inverted_attention_mask(
    features: Tensor,
    grads: Tensor,
    *,
    strategy: str = "soft",
    orientation: str = "spatial+channel",
    spatial_ratio: float = 1 / 3,
    channel_ratio: float = 0.8,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The inverted attention ``A`` of Eq. 2-4, broadcastable to ``features`` ``(N, C, H, W)``.

    With ``w`` and ``M`` from Eq. 1 (:func:`attention_weights`):

    * ``soft`` — the spatial mask ``a_s`` is 0 at the ``round(spatial_ratio * H * W)`` largest cells of
      ``M`` per RoI (Eq. 2 with a per-RoI threshold ``T_s``); the channel mask ``a_c`` is 0 at the
      ``round(channel_ratio * C)`` largest entries of ``w`` (Eq. 3).
    * ``hard`` — ``M`` (and ``w``) min-max normalised to [0, 1] per RoI, 0 where > 0.5 (threshold 0.5).
    * ``overturn`` — ``1 - normalised`` (continuous; Sec. 4.3.1).
    * ``random`` — as many cells (channels) as ``soft``, chosen at random with ``generator``.

    A constant row keeps everything (``hard``, ``overturn``). Orientation:

    * ``spatial`` — ``a_s`` on every channel: shape ``(N, 1, H, W)``;
    * ``channel`` — ``a_c`` at every position: ``(N, C, 1, 1)``;
    * ``spatial+channel`` — Eq. 4: ``a_s`` on the channels where ``a_c == 0``, 1 elsewhere:
      ``(N, C, H, W)``. Written ``1 - (1 - a_c)(1 - a_s)``, which is Eq. 4 for binary masks and
      its natural extension to the continuous ``overturn``.

    The paper's "for channel-wise inverted attention map, we dropout top 80% pixels with
    highest values" (Sec. 4.1.2) is read as: ``a_c = 0`` for the 80% of channels with the
    largest ``w``, i.e. ``channel_ratio=0.8`` is the fraction of channels that Eq. 4 hands to the
    spatial inversion; the least sensitive 20% keep every cell. (Under ``orientation="channel"``
    alone those 80% of channels are zeroed outright.)

    Returns the mask in ``features.dtype``.
    """
    if strategy not in IA_STRATEGIES:
        raise ConfigError(f"unknown IA strategy '{strategy}' (valid: {', '.join(IA_STRATEGIES)})")
    if orientation not in IA_ORIENTATIONS:
        raise ConfigError(f"unknown IA orientation '{orientation}' (valid: {', '.join(IA_ORIENTATIONS)})")
    n, c, h, w_ = features.shape
    w, attention = attention_weights(features, grads)
    a_s = _inversion(attention.reshape(n, h * w_), spatial_ratio, strategy, generator).reshape(n, 1, h, w_)
    if orientation == "spatial":
        return a_s.to(features.dtype)
    a_c = _inversion(w, channel_ratio, strategy, generator).reshape(n, c, 1, 1)
    if orientation == "channel":
        return a_c.to(features.dtype)
    return (1.0 - (1.0 - a_c) * (1.0 - a_s)).to(features.dtype)


# ----------------------------------------------------------------------------------------------
# RoI selection


def select_random(n: int, ratio: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``round(ratio * n)`` distinct RoI indices drawn uniformly (the paper: 20% of the RoIs)."""
    k = min(n, round(ratio * n))
    if k <= 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    gen_device = generator.device if generator is not None else device
    return torch.randperm(n, generator=generator, device=gen_device)[:k].to(device).sort().values


def select_by_drop(change: Tensor, labels: Tensor, fg_ratio: float, bg_ratio: float) -> Tensor:
    """The authors' code: per group (foreground, background), the RoIs whose confidence drop is
    strictly above the ``round(n * ratio)``-th largest drop (0-based index) and above 0.

    ``change`` ``(N,)`` = ``p_before[gt] - p_after[gt] - offset``, clamped at 0 by the caller.
    Returns a bool mask ``(N,)``.
    """
    selected = torch.zeros_like(labels, dtype=torch.bool)
    for group, ratio in ((labels > 0, fg_ratio), (labels == 0, bg_ratio)):
        values = change[group]
        n = values.numel()
        if n == 0 or ratio <= 0:
            continue
        k = round(n * ratio)
        threshold = values.sort(descending=True).values[k] if k < n else values.new_tensor(-math.inf)
        selected[group] = (values > threshold) & (values > 0)
    return selected


# ----------------------------------------------------------------------------------------------
# the training method


class InvertedAttention(RoIMethod, params=IAParams):
    """Inverted Attention on the RoI features: ``F <- F * A`` for a subset of RoIs (Eq. 7).

    Parameters: :class:`~iadet.config.methods.IAParams` (presets ``ia``, the paper, and ``ia-code``,
    the authors' released code). Random choices draw from the global torch RNG (exact resume).
    """

    def training_hooks(self, model: nn.Module) -> list[HookBase]:
        """``method.save_attention_every > 0``: the recording of fixed RoIs' attention (Fig. 5)."""
        p = self.params
        if p.save_attention_every <= 0:
            return []
        return [AttentionRecording(model, p.save_attention_every, p.save_attention_rois)]

    def needs_max_iters(self) -> bool:
        return self.params.ramp == "triangle"

    def ratio_factor(self) -> float:
        """The ramp's multiplier of the selected fraction at the current iteration, in [0, 1]."""
        p = self.params
        if p.ramp == "warmup" and p.ramp_iters > 0:
            return min(1.0, self.iteration / p.ramp_iters)
        if p.ramp == "triangle":
            t = self.iteration / max(self.max_iters or 1, 1)
            return max(0.0, 1.0 - abs(2.0 * t - 1.0))
        return 1.0

    def forward(self, features: Tensor, batch: RoIBatch) -> RoIOutput:
        labels, score_fn = batch.labels, batch.head
        p = self.params
        n = features.shape[0]
        if n == 0:
            return RoIOutput(features)
        factor = self.ratio_factor()
        if p.select == "random":
            index = select_random(n, p.roi_ratio * factor, None, features.device)
        else:
            index = torch.arange(n, device=features.device)
        if index.numel() == 0:
            return RoIOutput(features, stats={"ia_masked_fraction": 0.0})

        probe, probe_labels = features[index], labels[index]
        logits, grads = _gt_logits_and_gradients(probe, probe_labels, score_fn)
        mask = inverted_attention_mask(
            probe,
            grads,
            strategy=p.strategy,
            orientation=p.orientation,
            spatial_ratio=p.spatial_ratio,
            channel_ratio=p.channel_ratio,
        )
        if p.select == "drop":
            keep = self._drop_selection(probe, probe_labels, logits, mask, score_fn, factor)
            index, mask = index[keep], mask[keep]
        stats = {"ia_masked_fraction": index.numel() / n}
        if index.numel() == 0:
            return RoIOutput(features, stats=stats)
        masked = features[index] * mask.detach()
        return RoIOutput(features.index_copy(0, index, masked), stats=stats)

    def _drop_selection(
        self, probe: Tensor, labels: Tensor, logits: Tensor, mask: Tensor, score_fn: ScoreFn, factor: float
    ) -> Tensor:
        """The code's RoI choice: one batched head pass on the masked features; keep the RoIs whose
        ground-truth probability dropped most (``fg_ratio`` of foreground, ``bg_ratio`` of background)."""
        with torch.no_grad(), eval_mode(score_fn), float32_probe(probe.device.type):
            after = score_fn((probe * mask).float()).float().softmax(1)
        before = logits.softmax(1)
        gt = labels.view(-1, 1)
        change = (
            (before.gather(1, gt) - after.gather(1, gt) - self.params.drop_offset).squeeze(1).clamp(min=0)
        )
        return select_by_drop(change, labels, self.params.fg_ratio * factor, self.params.bg_ratio * factor)


# ----------------------------------------------------------------------------------------------
# recording the attention of fixed RoIs during training (Fig. 5): ``method.save_attention_every``
#
# Recording how the attention of fixed RoIs evolves during training (the IA paper's Fig. 5).
#
# :class:`AttentionRecorder` is what ``method.save_attention_every=N`` (methods ``ia``/``ia-code``)
# turns on. It hooks the detector's forward (a forward pre-hook, registered only when the option
# is on, so training without it is untouched) and
#
# * at the first training forward keeps the fixed RoIs: the ground-truth boxes of the first
#   images of the batch, at most ``max_rois``, with those images (uint8);
# * at iteration 0, every ``every`` iterations and at the last iteration, before that iteration's
#   update, pools those RoIs with the current model and keeps ``M`` (Eq. 1) and the ground-truth
#   probability of each.
#
# The loop hook :class:`AttentionRecording`, which IA hands the training loop
# (:meth:`~iadet.modeling.methods.RoIMethod.training_hooks`), owns it; its :meth:`state_dict` (plain
# tensors, lists, ints) goes into the training checkpoint under ``method.extra.attention_evolution``,
# so it survives ``--resume`` and ``iadet visualize evolution --run DIR`` reads it from ``DIR/checkpoint.pth`` (:func:`iadet.visualization.figures.evolution_figure`
# draws it). The probe runs in eval mode without autocast and draws no random
# number, so the training itself is unchanged by recording (bit for bit in deterministic mode).
# Only the main process records.


def snapshot_attention(
    model: nn.Module, images: list[Tensor], boxes: Tensor, labels: Tensor, image_index: Tensor
) -> dict[str, Tensor]:
    """``{"attention": (K, H, W), "probability": (K,)}`` of the RoIs ``boxes`` ``(K, 4)`` of ``images``.

    ``images`` float ``(3, H_i, W_i)`` in [0, 1] on the model's device; ``image_index`` ``(K,)`` says
    which image each box is in.
    """
    device = images[0].device
    per_image = [boxes[image_index == i].to(device) for i in range(len(images))]
    order = torch.cat([torch.nonzero(image_index == i).flatten() for i in range(len(images))])
    features = pool_rois(model, images, per_image)
    labels_sorted = labels[order].to(device)
    score_fn = model.roi_heads.score_fn
    with torch.autocast(device.type, enabled=False):
        grads = gt_score_gradients(features, labels_sorted, score_fn)
        _, attention = attention_weights(features, grads)
        probability = gt_probabilities(features, labels_sorted, score_fn)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=order.device)
    return {"attention": attention.cpu()[inverse], "probability": probability.cpu()[inverse]}


class AttentionRecorder:
    """Snapshots of the attention of fixed RoIs every ``every`` iterations (see the module docstring)."""

    def __init__(self, model: nn.Module, *, every: int, max_rois: int = 8) -> None:
        if every <= 0:
            raise ValueError("every must be positive")
        self.every = every
        self.max_rois = max_rois
        self.iteration = 0
        self.max_iters = 1
        self.images: list[Tensor] = []
        self.boxes = torch.zeros(0, 4)
        self.labels = torch.zeros(0, dtype=torch.int64)
        self.image_index = torch.zeros(0, dtype=torch.int64)
        self.snapshots: list[dict[str, Any]] = []
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def start_iteration(self, iteration: int, max_iters: int) -> None:
        self.iteration, self.max_iters = iteration, max_iters

    def remove(self) -> None:
        """Unhook from the model."""
        self.handle.remove()

    def due(self, iteration: int) -> bool:
        return iteration % self.every == 0 or iteration == self.max_iters - 1

    # --- forward: the method on the RoI features --------------------------------------------------------------------------
    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        targets = args[1] if len(args) > 1 else kwargs.get("targets")
        if not module.training or targets is None or not _is_main():
            return
        images = args[0] if args else kwargs["images"]
        if not self.images:
            self._capture(images, targets)
            if not self.images:
                return
        i = self.iteration
        if self.due(i) and (not self.snapshots or self.snapshots[-1]["iteration"] < i):
            device = images[0].device
            snapshot = snapshot_attention(
                module,
                [im.to(device).float() / 255.0 for im in self.images],
                self.boxes,
                self.labels,
                self.image_index,
            )
            self.snapshots.append({"iteration": i, **snapshot})

    def _capture(self, images: list[Tensor], targets: list[dict[str, Tensor]]) -> None:
        """Keep the first ``max_rois`` ground-truth boxes of the batch, and their images."""
        boxes, labels, index = [], [], []
        for image, target in zip(images, targets):
            room = self.max_rois - sum(len(b) for b in boxes)
            if room <= 0:
                break
            b = target["boxes"][:room].detach().float().cpu()
            if len(b) == 0:
                continue
            index.append(torch.full((len(b),), len(self.images), dtype=torch.int64))
            boxes.append(b)
            labels.append(target["labels"][:room].detach().cpu())
            self.images.append((image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu())
        if boxes:
            self.boxes, self.labels, self.image_index = torch.cat(boxes), torch.cat(labels), torch.cat(index)

    # --- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors, ints and lists: ``{"every", "images", "boxes", "labels", "image_index",
        "snapshots": [{"iteration", "attention" (K, H, W), "probability" (K,)}]}``."""
        return {
            "every": self.every,
            "images": list(self.images),
            "boxes": self.boxes,
            "labels": self.labels,
            "image_index": self.image_index,
            "snapshots": list(self.snapshots),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.images = list(state.get("images", []))
        self.boxes = state.get("boxes", self.boxes)
        self.labels = state.get("labels", self.labels)
        self.image_index = state.get("image_index", self.image_index)
        self.snapshots = list(state.get("snapshots", []))


def _is_main() -> bool:
    return not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_rank() == 0


class AttentionRecording(HookBase):
    """The loop hook of ``method.save_attention_every``: records the attention of fixed RoIs every
    ``every`` iterations (Fig. 5) with an :class:`AttentionRecorder` on ``model``, and keeps the record
    in the checkpoint."""

    def __init__(self, model: nn.Module, every: int, max_rois: int) -> None:
        self.recorder = AttentionRecorder(model, every=every, max_rois=max_rois)

    def before_step(self) -> None:
        self.recorder.start_iteration(self.trainer.iter, self.trainer.max_iters)

    def after_train(self) -> None:
        self.recorder.remove()

    def state_dict(self) -> dict[str, Any]:
        return {"extra": {"attention_evolution": self.recorder.state_dict()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        recorded = state.get("extra", {}).get("attention_evolution")
        if recorded is not None:
            self.recorder.load_state_dict(recorded)
