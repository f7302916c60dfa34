"""ONNX export of a detector's inference model, and a parity check with ONNX Runtime.

The exported graph is the whole torchvision inference path — resize and normalise, backbone,
RPN (or the given proposals), RoI heads, NMS, and the mapping back to the input image — for
one image:

* input ``image``: ``(3, H, W)`` float32 RGB in [0, 1] (any ``H, W``: the axes are dynamic);
* Fast R-CNN only, input ``proposals``: ``(K, 4)`` float32 ``x1, y1, x2, y2`` in the image's pixels;
* outputs ``boxes`` ``(N, 4)`` float32 in the image's pixels, ``labels`` ``(N,)`` int64 (1-based,
  0 is background), ``scores`` ``(N,)`` float32, and for Mask R-CNN ``masks`` ``(N, 1, H, W)``
  float32 probabilities.

It uses PyTorch's TorchScript-based exporter (``dynamo=False``), which traces torchvision's
detection models as torchvision's own ONNX tests do; the ``dynamo`` exporter needs the
``onnxscript`` package and does not handle the data-dependent shapes of NMS here.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from iadet.errors import ConfigError

DEFAULT_OPSET = 17


class InferenceModel(nn.Module):
    """One image in, plain tensors out: the exported function (see the module docstring)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.needs_proposals = bool(getattr(detector, "needs_proposals", False))
        self.has_masks = getattr(detector.roi_heads, "mask_predictor", None) is not None

    def output_names(self) -> list[str]:
        return ["boxes", "labels", "scores"] + (["masks"] if self.has_masks else [])

    def input_names(self) -> list[str]:
        return ["image"] + (["proposals"] if self.needs_proposals else [])

    def forward(self, image: Tensor, proposals: Tensor | None = None) -> tuple[Tensor, ...]:
        if self.needs_proposals:
            out = self.detector([image], proposals=[proposals])[0]
        else:
            out = self.detector([image])[0]
        return tuple(out[name] for name in self.output_names())


def export_onnx(
    detector: nn.Module,
    path: str | Path,
    example: Tensor,
    *,
    proposals: Tensor | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = True,
) -> Path:
    """Trace ``detector`` (eval mode) on ``example`` ``(3, H, W)`` and write ``path``.

    With ``dynamic`` the image's height and width (and the number of proposals) are dynamic axes;
    otherwise the graph is fixed to the example's size.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = InferenceModel(detector.eval()).eval()
    if model.needs_proposals and proposals is None:
        raise ConfigError("exporting a Fast R-CNN needs example proposals")
    args: tuple[Tensor, ...] = (example,) if not model.needs_proposals else (example, proposals)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {"image": {1: "height", 2: "width"}, "boxes": {0: "detections"}}
        dynamic_axes.update({name: {0: "detections"} for name in model.output_names()[1:]})
        if model.needs_proposals:
            dynamic_axes["proposals"] = {0: "proposals"}
        if model.has_masks:
            dynamic_axes["masks"] = {0: "detections", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        # tracing torchvision's detectors warns about every Python-side shape computation
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=model.input_names(),
            output_names=model.output_names(),
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    return path


def run_onnx(path: str | Path, image: Tensor, proposals: Tensor | None = None) -> dict[str, np.ndarray]:
    """The exported model's outputs on ``image`` with ONNX Runtime on CPU."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("checking an ONNX export needs onnxruntime: pip install 'iadet[export]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"image": image.detach().cpu().float().numpy()}
    if proposals is not None:
        feeds["proposals"] = proposals.detach().cpu().float().numpy()
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


@torch.no_grad()
def run_torch(detector: nn.Module, image: Tensor, proposals: Tensor | None = None) -> dict[str, np.ndarray]:
    """The same outputs from PyTorch."""
    model = InferenceModel(detector.eval())
    outputs = model(image, proposals)
    return {name: t.detach().cpu().numpy() for name, t in zip(model.output_names(), outputs)}


def compare_detections(
    reference: dict[str, np.ndarray],
    other: dict[str, np.ndarray],
    *,
    box_tol: float = 0.5,
    score_tol: float = 1e-3,
) -> dict[str, Any]:
    """Match ``other``'s detections to ``reference``'s (same label, boxes within ``box_tol`` pixels,
    scores within ``score_tol``), greedily in order of the reference score.

    Returns ``{"detections": N_ref, "unmatched": ..., "max_box_diff": ..., "max_score_diff": ...}``
    where the maxima run over matched pairs. Reordering among near-equal scores is tolerated; a
    missing or extra detection counts as unmatched unless its score is within ``score_tol`` of
    the lowest score kept (a tie at the cut-off).
    """
    rb, rl, rs = reference["boxes"], reference["labels"], reference["scores"]
    ob, ol, os_ = other["boxes"], other["labels"], other["scores"]
    used = np.zeros(len(ob), bool)
    box_diff = score_diff = 0.0
    unmatched = 0
    floor = min(rs.min() if len(rs) else np.inf, os_.min() if len(os_) else np.inf)
    for i in np.argsort(-rs, kind="stable"):
        candidates = np.where(~used & (ol == rl[i]))[0]
        if len(candidates):
            diffs = np.abs(ob[candidates] - rb[i]).max(axis=1)
            sdiffs = np.abs(os_[candidates] - rs[i])
            ok = (diffs <= box_tol) & (sdiffs <= score_tol)
            if ok.any():
                j = candidates[ok][np.argmin(diffs[ok] + sdiffs[ok])]
                used[j] = True
                box_diff = max(box_diff, float(np.abs(ob[j] - rb[i]).max()))
                score_diff = max(score_diff, float(abs(os_[j] - rs[i])))
                continue
        if rs[i] > floor + score_tol:
            unmatched += 1
    unmatched += int(((~used) & (os_ > floor + score_tol)).sum())
    return {
        "detections": int(len(rs)),
        "unmatched": unmatched,
        "max_box_diff": box_diff,
        "max_score_diff": score_diff,
    }
