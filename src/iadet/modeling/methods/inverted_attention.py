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
from torch import Tensor

from iadet.errors import ConfigError
from iadet.modeling.methods.base import RoIBatch, RoIMethod, ScoreFn, register_method
from iadet.modeling.methods.head import eval_mode, float32_probe

STRATEGIES = ("soft", "hard", "overturn", "random")
ORIENTATIONS = ("spatial", "channel", "spatial+channel")
SELECTIONS = ("random", "drop", "all")
RAMPS = ("constant", "warmup", "triangle")


# ----------------------------------------------------------------------------------------------
# Eq. 1-4 as functions of tensors


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
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown IA strategy '{strategy}' (valid: {', '.join(STRATEGIES)})")
    if orientation not in ORIENTATIONS:
        raise ConfigError(f"unknown IA orientation '{orientation}' (valid: {', '.join(ORIENTATIONS)})")
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


@dataclass
class IAParams:
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
    keep_last: bool = False
    """Keep the last attention maps, masks and selected RoIs (for pictures) on ``method.last``."""
    save_attention_every: int = 0
    """Every N iterations record the attention ``M`` (Eq. 1) of fixed RoIs, the ground-truth boxes of the
    first training batch, into the checkpoint for ``iadet visualize evolution`` (Fig. 5); 0 = off."""
    save_attention_rois: int = 8
    """``save_attention_every``: how many ground-truth boxes to follow."""


def _check(params: IAParams) -> None:
    for key, value, valid in (
        ("strategy", params.strategy, STRATEGIES),
        ("orientation", params.orientation, ORIENTATIONS),
        ("select", params.select, SELECTIONS),
        ("ramp", params.ramp, RAMPS),
    ):
        if value not in valid:
            raise ConfigError(f"method.{key}: unknown value '{value}' (valid: {', '.join(valid)})")
    for key in ("spatial_ratio", "channel_ratio", "roi_ratio", "fg_ratio", "bg_ratio"):
        value = getattr(params, key)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"method.{key} must be in [0, 1], got {value}")
    if params.save_attention_every < 0 or params.save_attention_rois < 1:
        raise ConfigError(
            "method.save_attention_every must be >= 0 and method.save_attention_rois >= 1, got "
            f"{params.save_attention_every} and {params.save_attention_rois}"
        )


class InvertedAttention(RoIMethod):
    """Inverted Attention on the RoI features: ``F <- F * A`` for a subset of RoIs (Eq. 7)."""

    Params = IAParams

    def __init__(self, params: IAParams | None = None) -> None:
        super().__init__(params)
        _check(self.params)
        self.generator: torch.Generator | None = None
        self.last: dict[str, Any] | None = None
        self.recorder = None  # an AttentionRecorder when save_attention_every > 0

    def setup(self, model: torch.nn.Module) -> None:
        if self.params.save_attention_every > 0:
            from iadet.visualization.evolution import AttentionRecorder

            self.recorder = AttentionRecorder(
                model, every=self.params.save_attention_every, max_rois=self.params.save_attention_rois
            )

    def start_iteration(self, iteration: int, max_iters: int) -> None:
        super().start_iteration(iteration, max_iters)
        if self.recorder is not None:
            self.recorder.start_iteration(iteration, max_iters)

    def extra_state(self) -> dict[str, Any]:
        return {"attention_evolution": self.recorder.state_dict()} if self.recorder is not None else {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        if self.recorder is not None and "attention_evolution" in state:
            self.recorder.load_state_dict(state["attention_evolution"])

    def ratio_factor(self) -> float:
        """The ramp's multiplier of the selected fraction at the current iteration, in [0, 1]."""
        p = self.params
        if p.ramp == "warmup" and p.ramp_iters > 0:
            return min(1.0, self.iteration / p.ramp_iters)
        if p.ramp == "triangle":
            t = self.iteration / max(self.max_iters, 1)
            return max(0.0, 1.0 - abs(2.0 * t - 1.0))
        return 1.0

    def forward(self, features: Tensor, labels: Tensor, score_fn: ScoreFn, batch: RoIBatch) -> Tensor:
        p = self.params
        n = features.shape[0]
        if n == 0:
            return features
        factor = self.ratio_factor()
        if p.select == "random":
            index = select_random(n, p.roi_ratio * factor, self.generator, features.device)
        else:
            index = torch.arange(n, device=features.device)
        if index.numel() == 0:
            batch.stats["ia_masked_fraction"] = 0.0
            return features

        probe, probe_labels = features[index], labels[index]
        logits, grads = _gt_logits_and_gradients(probe, probe_labels, score_fn)
        mask = inverted_attention_mask(
            probe,
            grads,
            strategy=p.strategy,
            orientation=p.orientation,
            spatial_ratio=p.spatial_ratio,
            channel_ratio=p.channel_ratio,
            generator=self.generator,
        )
        if p.select == "drop":
            keep = self._drop_selection(probe, probe_labels, logits, mask, score_fn, factor)
            index, mask = index[keep], mask[keep]
        if self.params.keep_last:
            _, attention = attention_weights(probe, grads)
            self.last = {
                "attention": attention.detach().cpu(),
                "mask": mask.detach().float().cpu(),
                "selected": index.detach().cpu(),
                "labels": labels.detach().cpu(),
                "iteration": self.iteration,
            }
        batch.stats["ia_masked_fraction"] = index.numel() / n
        if index.numel() == 0:
            return features
        masked = features[index] * mask.detach()
        return features.index_copy(0, index, masked)

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


register_method(
    "ia", doc="Inverted Attention as the paper describes it (soft, spatial+channel, 20% of RoIs)"
)(InvertedAttention)
register_method(
    "ia-code",
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
)(InvertedAttention)
