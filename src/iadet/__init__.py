"""iadet: hard examples in feature space for torchvision detectors.

Inverted Attention (Huang, Ke, Huang) and the A-Fast-RCNN adversaries (Wang, Shrivastava,
Gupta) as drop-in training methods for torchvision's two-stage detectors, in any training loop::

    import iadet
    method = iadet.attach(model, "ia")          # a torchvision FasterRCNN / MaskRCNN, before DDP
    ...                                         # train as before: sum(model(images, targets).values())

* :func:`attach`, :func:`detach`, :func:`list_methods` — :mod:`iadet.modeling.attach`;
* :mod:`iadet.transforms` — the image-space baselines (Cutout, GridMask, Random Erasing,
  Hide-and-Seek) as ``torchvision.transforms.v2`` transforms;
* :func:`gt_score_gradients`, :func:`inverted_attention_mask` — IA's equations as tensor functions.

See ``docs/library.md``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"
__all__ = [
    "__version__",
    "attach",
    "detach",
    "gt_score_gradients",
    "inverted_attention_mask",
    "list_methods",
]

_LAZY = {
    "attach": "iadet.modeling.attach",
    "detach": "iadet.modeling.attach",
    "list_methods": "iadet.modeling.attach",
    "gt_score_gradients": "iadet.modeling.methods.inverted_attention",
    "inverted_attention_mask": "iadet.modeling.methods.inverted_attention",
}


def __getattr__(name: str) -> Any:
    # lazy, so that `iadet --help` does not import torch
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "transforms":
        import importlib

        return importlib.import_module("iadet.transforms")
    raise AttributeError(f"module 'iadet' has no attribute {name!r}")
