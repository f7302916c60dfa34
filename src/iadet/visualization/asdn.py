"""A-Fast-RCNN's Fig. 3 from a trained ASDN: the occlusions it learned to predict, per object.

For each ground-truth object of an image, four tiles on the RoI:

1. the RoI crop with ``p``, the detector's probability of the ground-truth class;
2. the hardest sliding-window occlusion of ASDN pre-training (Sec. 4.2.1, stage (b): the window whose
   zeroing lowers ``p`` most) — the target the ASDN was pre-trained on — with ``p`` after it;
3. the ASDN's heat-map before thresholding (``sigmoid`` of its ``(H, W)`` logits, on [0, 1]);
4. the mask sampled from it by "thresholding by sampling" (stage (c)) with ``p`` after it.

Masks are drawn as what is kept (red) and dropped (blue), as the IA figures draw theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from iadet.config import Config
from iadet.engine.checkpoint import is_training_checkpoint, load_file, method_section
from iadet.errors import CheckpointError
from iadet.modeling.methods import build_method
from iadet.modeling.methods.adversarial import AdversarialMethod
from iadet.modeling.methods.asdn import cell_counts, hardest_windows, importance_sample
from iadet.modeling.methods.probes import gt_probabilities, pool_rois
from iadet.visualization.heatmaps import Grid, heatmap_overlay, roi_crop

__all__ = ["asdn_figure", "load_adversary"]


def load_adversary(checkpoint: str | Path, model: nn.Module, config: Config) -> AdversarialMethod:
    """The trained ASDN method of a run: built from its config, sized to ``model``, weights from the
    training checkpoint (``checkpoint.pth``; given ``model_final.pth``, the one beside it)."""
    path = Path(checkpoint)
    if path.name == "model_final.pth":  # a bare state dict: the adversary is in the run's checkpoint
        path = path.parent / "checkpoint.pth"
    if not path.is_file():
        raise CheckpointError(
            f"{checkpoint}: the ASDN's weights are in the run's checkpoint.pth, not found beside it"
        )
    state = load_file(path)
    if not is_training_checkpoint(state):
        raise CheckpointError(f"{path}: not a training checkpoint")
    method = build_method(config.method)
    if not isinstance(method, AdversarialMethod) or not method.uses_asdn:
        raise CheckpointError(
            f"{path}: method '{config.method.name}' has no ASDN (train asdn, fixed-asdn or asdn+astn)"
        )
    method.setup(model)
    adversary = method_section(state)
    try:
        method.load_state_dict(adversary.get("state") or {})
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: the adversary's weights do not fit its config ({str(exc)[:200]})"
        ) from None
    return method.to(next(model.parameters()).device).eval()


def _class_name(classes: Sequence[str], label: int) -> str:
    return classes[label - 1] if 0 < label <= len(classes) else str(label)


@torch.no_grad()
def asdn_figure(
    image: np.ndarray,
    boxes: Tensor,
    labels: Tensor,
    model: nn.Module,
    method: AdversarialMethod,
    classes: Sequence[str],
    *,
    tile: int = 112,
    seed: int = 0,
    title: str = "",
) -> Image.Image:
    """Fig. 3 for the objects ``boxes`` ``(N, 4)`` (``labels`` ``(N,)``) of ``image`` (``H x W x 3`` uint8).

    The sampled masks use a generator seeded by ``seed`` (the training draws from the global RNG).
    Layout: ``N`` rows of 4 tiles.
    """
    device = next(model.parameters()).device
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255.0).to(device)
    features = pool_rois(model, [tensor], [boxes])
    labels = labels.to(device=features.device, dtype=torch.int64)
    score_fn = model.roi_heads.score_fn
    _, _, h, w = features.shape
    p = gt_probabilities(features, labels, score_fn)
    window, p_window = hardest_windows(features, labels, score_fn, method.windows(h, w))
    logits = method.asdn(features)
    drop_count, pool_count = cell_counts(h, w, method.params.drop_fraction, method.params.pool_fraction)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sampled = importance_sample(logits.cpu(), drop_count, pool_count).to(features.device)
    p_sampled = gt_probabilities(features * (~sampled).unsqueeze(1).to(features.dtype), labels, score_fn)
    grid = Grid(
        len(boxes),
        4,
        tile,
        title=title or "A-Fast-RCNN Fig. 3: the occlusions of ASDN pre-training and those the ASDN predicts",
        headers=["RoI", "hardest window (b)", "ASDN heat-map", "sampled mask (c)"],
        row_labels=[f"object {n + 1}: {_class_name(classes, int(labels[n]))}" for n in range(len(boxes))],
    )
    for n, box in enumerate(boxes):
        crop = roi_crop(image, box.tolist(), tile)
        grid.put(n, 0, crop, f"p {float(p[n]):.2f}")
        kept_window = 1.0 - window[n].cpu()
        grid.put(
            n, 1, heatmap_overlay(crop, kept_window, value_range=(0.0, 1.0)), f"p {float(p_window[n]):.2f}"
        )
        grid.put(n, 2, heatmap_overlay(crop, logits[n].sigmoid().cpu(), value_range=(0.0, 1.0)), "sigmoid")
        kept_sampled = (~sampled[n]).float().cpu()
        grid.put(
            n, 3, heatmap_overlay(crop, kept_sampled, value_range=(0.0, 1.0)), f"p {float(p_sampled[n]):.2f}"
        )
    return grid.image
