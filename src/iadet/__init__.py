"""iadet: hard examples in feature space for torchvision detectors.

Inverted Attention (Huang, Ke, Huang) and the A-Fast-RCNN adversaries (Wang, Shrivastava,
Gupta) as drop-in training methods for torchvision's two-stage detectors.

The framework-agnostic pieces are importable from here::

    from iadet import gt_score_gradients, inverted_attention_mask
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"
__all__ = ["__version__", "gt_score_gradients", "inverted_attention_mask"]


def __getattr__(name: str) -> Any:
    # lazy, so that `iadet --help` does not import torch
    if name in ("gt_score_gradients", "inverted_attention_mask"):
        from iadet.modeling.methods import inverted_attention

        return getattr(inverted_attention, name)
    raise AttributeError(f"module 'iadet' has no attribute {name!r}")
