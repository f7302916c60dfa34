"""Recording how the attention of fixed RoIs evolves during training (the IA paper's Fig. 5).

:class:`AttentionRecorder` is what ``method.save_attention_every=N`` (methods ``ia``/``ia-code``)
turns on. It hooks the detector's forward (a forward pre-hook, registered only when the option
is on, so training without it is untouched) and

* at the first training forward keeps the fixed RoIs: the ground-truth boxes of the first
  images of the batch, at most ``max_rois``, with those images (uint8);
* at iteration 0, every ``every`` iterations and at the last iteration, before that iteration's
  update, pools those RoIs with the current model and keeps ``M`` (Eq. 1) and the ground-truth
  probability of each.

The engine's ``attention`` hook (:class:`iadet.engine.hooks.AttentionRecording`) owns it; its
:meth:`state_dict` (plain tensors, lists, ints) goes into the training checkpoint under
``adversary.extra.attention_evolution``, so it survives ``--resume`` and ``iadet visualize evolution
--run DIR`` reads it from ``DIR/checkpoint.pth`` (:func:`iadet.visualization.figures.evolution_figure`
draws it). The probe runs in eval mode without autocast and draws no random
number, so the training itself is unchanged by recording (bit for bit in deterministic mode).
Only the main process records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from iadet.engine import distributed as dist
from iadet.modeling.methods.head import gt_probabilities, pool_rois
from iadet.modeling.methods.inverted_attention import attention_weights, gt_score_gradients

__all__ = ["AttentionRecorder", "snapshot_attention"]


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

    # --- the hook --------------------------------------------------------------------------
    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        targets = args[1] if len(args) > 1 else kwargs.get("targets")
        if not module.training or targets is None or not dist.is_main():
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
