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


def _torchrun(script: Path, *args: str, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1", "IADET_DIST_TIMEOUT": "60"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run(
        [*cmd, str(script), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


FINITE_CHECK = """
import sys
from pathlib import Path

import torch
from torch import nn

from iadet.engine import distributed as dist
from iadet.engine.training_run import _Run
from iadet.errors import TrainingError

dist.init_from_env("cpu")
run = _Run.__new__(_Run)  # only what the check reads
run.model, run.ckpt_path = nn.Linear(2, 2), Path(sys.argv[1]) / "checkpoint.pth"
if dist.rank() == int(sys.argv[2]):
    with torch.no_grad():
        run.model.weight[0, 0] = float("nan")
try:
    run._check_finite_weights("iteration 7")
    verdict = "passed"
except TrainingError as exc:
    verdict = str(exc)
(Path(sys.argv[1]) / f"rank{dist.rank()}.txt").write_text(verdict)  # one file each: no interleaved lines
dist.barrier()  # a rank that did not raise would go on to the next collective: here, it meets the others
dist.cleanup()
"""


@pytest.mark.parametrize("bad_rank", [0, 1])
def test_non_finite_weights_on_one_rank_stop_every_rank(tmp_path: Path, bad_rank: int):
    script = tmp_path / "check.py"
    script.write_text(FINITE_CHECK)
    done = _torchrun(script, str(tmp_path), str(bad_rank))
    assert done.returncode == 0, done.stderr[-2000:]
    for rank in (0, 1):
        verdict = (tmp_path / f"rank{rank}.txt").read_text()
        assert f"weight holds NaN or infinity on rank {bad_rank}" in verdict and "none saved" in verdict, rank


def test_the_process_group_is_destroyed_when_a_run_ends(monkeypatch, tmp_path: Path):
    from iadet.cli import main
    from iadet.engine import distributed, training_run
    from iadet.errors import TrainingError

    calls = []
    monkeypatch.setattr(distributed, "cleanup", lambda: calls.append("cleanup"))

    def fail(*args, **kwargs):
        raise TrainingError("boom")

    monkeypatch.setattr(training_run, "train", fail)
    assert main(["train", "--config", "quick", "--output", str(tmp_path / "run")]) != 0
    assert calls == ["cleanup"]
    monkeypatch.setattr(training_run, "train", lambda *a, **k: training_run.TrainResult(Path("x"), 3, False))
    assert main(["train", "--config", "quick", "--output", str(tmp_path / "run")]) == 0
    assert calls == ["cleanup", "cleanup"]


def test_a_one_process_checkpoint_resumes_with_two_processes(ddp_data: Path, tmp_path: Path):
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    first = subprocess.run(
        _cmd(ddp_data, out, 1, iters=2), capture_output=True, text=True, env=env, timeout=600
    )
    assert first.returncode == 0, first.stderr[-2000:]
    resume = _cmd(ddp_data, out, 2, iters=4) + ["--resume", "--force"]
    second = subprocess.run(resume, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    warnings = [line for line in second.stderr.splitlines() if line.startswith("iadet: warning:")]
    assert len(warnings) == 1  # rank 0 only
    assert "saved by 1 process(es) and resumes with 2" in warnings[0] and "not exactly" in warnings[0]
    assert len(_losses(out)) == 4
