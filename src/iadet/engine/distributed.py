"""torchrun / DDP plumbing: NCCL on GPUs, gloo on CPU.

Launch several processes with ``torchrun --nproc_per_node=N -m iadet train ...`` (or the
``iadet`` script path); each process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the
environment. A worker that dies makes the others fail at their next collective within
``IADET_DIST_TIMEOUT`` seconds (default 300) instead of hanging forever.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist

from iadet.errors import ConfigError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: str = "auto") -> torch.device:
    """Initialise the process group when launched by torchrun; return this process's device."""
    wanted = device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
        backend = "nccl" if wanted.startswith("cuda") else "gloo"
        timeout = datetime.timedelta(seconds=float(os.environ.get("IADET_DIST_TIMEOUT", "300")))
        if backend == "nccl":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            wanted = f"cuda:{local}"
        dist.init_process_group(backend=backend, timeout=timeout)
    return torch.device(wanted)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / world_size()


def any_true(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def all_gather_object(obj: Any) -> list[Any]:
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """All-reduce (mean) the gradients of parameters DDP does not manage (the adversaries)."""
    if not is_distributed():
        return
    for p in params:
        if p.grad is not None:
            if not p.grad.is_contiguous():
                # torch.autograd.grad may hand back an expanded view (stride 0, e.g. the gradient of
                # a plain sum); an in-place all_reduce on it corrupts memory under gloo
                p.grad = p.grad.contiguous()
            dist.all_reduce(p.grad)
            p.grad /= world_size()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def choose_device(name: str | None) -> torch.device:
    """``auto``/None: CUDA when available, else the CPU; otherwise the named device, checked."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available")
    return device
