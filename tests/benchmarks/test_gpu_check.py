"""benchmarks/gpu_check.sh in its CPU dry mode: the script runs end to end and writes what it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_voc

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_dry_mode_writes_throughput_memory_and_ratios(tmp_path: Path) -> None:
    data = make_voc(tmp_path / "voc", n_train=6, n_test=2)
    out = tmp_path / "gpu"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        [
            "bash",
            str(ROOT / "benchmarks" / "gpu_check.sh"),
            "--dry",
            "--data",
            str(data),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry"] is True and summary["backbone"] == "tiny" and summary["amp"] is False
    assert list(summary["methods"]) == ["none", "ia", "ia-code", "asdn+astn"]
    for method, row in summary["methods"].items():
        per_method = json.loads((out / f"{method.replace('+', '_')}.json").read_text())
        assert per_method["images_per_s"] == pytest.approx(row["images_per_s"]) and row["images_per_s"] > 0
        assert row["iterations_timed"] == 3  # 4 iterations, the first left out
        assert row["peak_memory_mib"] is None  # no GPU
        assert row["ratio"] == pytest.approx(
            row["median_s_per_iter"] / summary["methods"]["none"]["median_s_per_iter"]
        )
    assert summary["methods"]["none"]["ratio"] == 1.0
    assert "ratio to none" in done.stdout


def test_without_a_gpu_the_real_check_refuses_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert (
        done.returncode == 2
        and "no CUDA device" in done.stderr
        and len(done.stderr.strip().splitlines()) == 1
    )
