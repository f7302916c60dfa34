"""What the trainer's set-up does for a CUDA device, checked on the CPU: the deterministic mode's warning."""

from __future__ import annotations

import pytest
import torch

from iadet.engine.determinism import CUDA_DETERMINISM_WARNING, set_determinism


@pytest.fixture
def restore_determinism(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    enabled, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    benchmark = torch.backends.cudnn.benchmark
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.backends.cudnn.benchmark = benchmark


def test_deterministic_mode_on_cuda_says_what_it_costs_and_leaves_out(restore_determinism, capsys):
    # only the device's type is read: no CUDA is needed to set the mode up for it
    set_determinism(True, torch.device("cuda", 0))
    assert (
        torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    )
    err = capsys.readouterr().err
    assert err == CUDA_DETERMINISM_WARNING + "\n"  # one line
    for what in ("RoIAlign", "torch.compile", "evaluation", "RoIPool", "grid_sample", "CPU only"):
        assert what in err


def test_deterministic_mode_on_the_cpu_is_strict_and_silent(restore_determinism, capsys):
    set_determinism(True, torch.device("cpu"))
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    set_determinism(False, torch.device("cuda"))
    assert not torch.are_deterministic_algorithms_enabled()
    assert capsys.readouterr().err == ""
