"""``train.deterministic`` and the run's seeds: what makes a CPU run repeat itself bit for bit."""

from __future__ import annotations

import os
import sys

import torch

from iadet.engine import distributed as dist

CUDA_DETERMINISM_WARNING = (
    "iadet: warning: train.deterministic=true on CUDA is slower and only partly deterministic: "
    "torchvision then replaces RoIAlign by a torch.compile'd Python version (compiled on first use, "
    "in evaluation too); RoIPool (vgg16, alexnet) and grid_sample (astn) have no deterministic CUDA "
    "backward and stay non-deterministic (PyTorch warns when they run); bit-identical reruns and "
    "resumes are tested on the CPU only"
)


def set_determinism(enabled: bool, device: torch.device) -> None:
    """``train.deterministic``: deterministic algorithms for the rest of the process (evaluation too).

    On the CPU every operation the detectors use has a deterministic kernel, and a non-deterministic
    one would raise. On CUDA the mode is ``warn_only``: the operations without a deterministic CUDA
    backward (torchvision's RoIPool, ``grid_sample``) warn and stay non-deterministic instead of
    stopping the run, and torchvision swaps RoIAlign for a compiled Python version (deterministic,
    slower). Rank 0 says so in one line (:data:`CUDA_DETERMINISM_WARNING`).
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        on_cuda = device.type == "cuda"
        torch.use_deterministic_algorithms(True, warn_only=on_cuda)
        torch.backends.cudnn.benchmark = False
        if on_cuda and dist.is_main():
            print(CUDA_DETERMINISM_WARNING, file=sys.stderr, flush=True)
    else:
        torch.use_deterministic_algorithms(False)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators from ``seed``."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
