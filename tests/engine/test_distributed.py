"""DDP on CPU with gloo: 2 processes follow the 1-process loss curve; a dead worker ends the job."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import make_voc, read_jsonl, tiny_overrides

pytestmark = pytest.mark.slow

ITERS = 12


def _cmd(root: Path, out: Path, nproc: int, iters: int = ITERS) -> list[str]:
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
    ]
    cmd = (launcher if nproc > 1 else [sys.executable, "-m"]) + ["iadet", "train", "--config", "quick"]
    cmd += ["--output", str(out), "--quiet"]
    for o in tiny_overrides(root, iters) + [
        "train.batch_size=4",
        "train.eval_at_end=false",
        "train.lr=0.005",
    ]:
        cmd += ["--set", o]
    return cmd


def _losses(out: Path) -> np.ndarray:
    return np.array([r["loss"] for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "train"])


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory) -> Path:
    return make_voc(tmp_path_factory.mktemp("ddp") / "voc", n_train=24, n_test=4)


def test_two_gloo_processes_follow_the_single_process_loss_curve(ddp_data: Path, tmp_path: Path):
    env = {"OMP_NUM_THREADS": "1"}
    import os

    env = {**os.environ, **env}
    single = subprocess.run(
        _cmd(ddp_data, tmp_path / "one", 1), capture_output=True, text=True, env=env, timeout=600
    )
    assert single.returncode == 0, single.stderr[-2000:]
    double = subprocess.run(
        _cmd(ddp_data, tmp_path / "two", 2), capture_output=True, text=True, env=env, timeout=600
    )
    assert double.returncode == 0, double.stderr[-2000:]
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one) == len(two) == ITERS
    # same data, same global batch, same initial weights; only the RPN/RoI subsampling draws differ
    assert abs(one[0] - two[0]) < 0.01 * one[0]
    assert np.abs(one - two).mean() < 0.05 * one.mean()
    assert two[-3:].mean() < two[:3].mean()  # and it learns


def test_a_dead_worker_ends_the_job_instead_of_hanging(ddp_data: Path, tmp_path: Path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _cmd(ddp_data, out, 2, iters=100000), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not (out / "metrics.jsonl").exists():
            time.sleep(0.3)
        assert (out / "metrics.jsonl").exists(), "training never started"
        workers = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(workers) == 2
        subprocess.run(["kill", f"-{signal.SIGKILL.value}", workers[-1]], check=True)
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
