"""benchmarks/gpu_check.sh on the CPU: ``--dry`` exercises every item of the GPU check and records what it
promises; items fail, hang and skip one at a time without stopping the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
ITEMS = [
    "prepare",
    "env",
    "train-r50-fpn",
    "train-vgg16",
    "train-mask-rcnn",
    "train-r101-c4",
    "parity",
    "speed",
    "torchvision",
    "resume",
    "ddp",
]


def run_check(tmp_path: Path, *args: str, timeout: float = 400) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "gpu"
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry", "--output", str(out), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHON": sys.executable},
        cwd=tmp_path,
    )
    summary_path = out / "summary.json"
    assert summary_path.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(summary_path.read_text())


def checks(item: dict) -> dict[str, dict]:
    return {c["name"]: c for c in item["checks"]}


@pytest.mark.slow
def test_dry_run_exercises_every_item(tmp_path: Path) -> None:
    from iadet.config.methods import method_names

    done, summary = run_check(tmp_path)
    out = tmp_path / "gpu"
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert summary["dry"] is True and summary["command"].startswith("bash benchmarks/gpu_check.sh --dry")
    assert summary["torch"] and summary["env"]["torch"] == summary["torch"]
    assert list(summary["items"]) == ITEMS
    expected = {name: "pass" for name in ITEMS} | {"resume": "skip", "ddp": "skip"}  # need CUDA
    assert {n: it["status"] for n, it in summary["items"].items()} == expected, {
        n: it["error"] for n, it in summary["items"].items()
    }
    assert summary["counts"] == {"pass": 9, "fail": 0, "skip": 2}
    for name, item in summary["items"].items():
        assert item["wall_s"] >= 0 and item["budget_s"] > 0, name
        assert all(c["status"] in ("pass", "fail", "skip") for c in item["checks"]), name
        if item["status"] == "skip":
            assert item["error"] and "\n" not in item["error"], name

    # every registered method trains in the first training item; the stages of the adversaries all run
    matrix = checks(summary["items"]["train-r50-fpn"])
    methods = [m for m in method_names() if not m.startswith("test-")]
    assert set(methods) <= set(matrix)
    for method in methods:
        assert matrix[method]["status"] == "pass" and matrix[method]["iters"] >= 1, method
        assert isinstance(matrix[method]["final_loss"], float), method
    for method in ("asdn", "fixed-asdn", "asdn+astn"):
        assert matrix[method]["stages"] == ["warmup", "pretrain", "joint"], method
    assert matrix["astn"]["stages"] == ["warmup", "joint"]
    for arch in ("train-vgg16", "train-mask-rcnn", "train-r101-c4"):
        assert checks(summary["items"][arch])["asdn+astn"]["stages"] == ["warmup", "pretrain", "joint"]

    speed = summary["items"]["speed"]["details"]["methods"]
    assert list(speed) == ["none", "ia", "ia-code", "asdn+astn"]
    assert speed["none"]["ratio"] == 1.0
    for row in speed.values():
        assert row["images_per_s"] > 0 and row["peak_memory_mib"] is None  # no GPU
    assert speed["ia"]["floor"] > 1.0 and speed["ia-code"]["floor"] > 1.0

    # the same initial weights and data give the plain torchvision loop iadet's first loss
    tv = checks(summary["items"]["torchvision"])
    assert tv["plain torchvision loop"]["status"] == "pass" and tv["iadet none"]["status"] == "pass"
    assert tv["same loss from the same init"]["first_step"]["relative_difference"] < 1e-5
    assert tv["throughput within 10% of torchvision"]["status"] == "skip"

    parity = checks(summary["items"]["parity"])
    for name in ("r50-fpn float32", "mask-rcnn float32"):
        assert parity[name]["status"] == "pass" and min(parity[name]["detections"]) > 0, parity[name]

    resume = checks(summary["items"]["resume"])
    assert resume["2 iterations on the CPU"]["status"] == "pass"
    assert resume["resume on cpu, amp=true (CPU stand-in)"]["status"] == "pass"
    assert resume["resume on cuda"]["status"] == "skip"
    ddp = checks(summary["items"]["ddp"])
    assert ddp["torchrun --nproc_per_node=1 (cpu stand-in)"]["status"] == "pass"
    assert ddp["torchrun --nproc_per_node=1 (nccl)"]["status"] == "skip"

    report = (out / "report.md").read_text()
    assert "Dry run on the CPU" in report and all(f"| {name} |" in report for name in ITEMS)
    assert (out / "runs" / "train-r50-fpn" / "none" / "metrics.jsonl").is_file()
    assert not list(out.rglob("*.pth"))  # weights and checkpoints stay in the scratch directory
    assert not Path(summary["scratch"]).exists()  # which is removed


@pytest.mark.slow
def test_a_hung_item_is_killed_and_the_others_go_on(tmp_path: Path) -> None:
    done, summary = run_check(
        tmp_path,
        "--isolate",
        "--items",
        "prepare,env,resume",
        "--fail-item",
        "env:hang",
        "--item-budget",
        "env=2",
    )
    assert done.returncode == 1  # an item failed
    items = summary["items"]
    assert list(items) == ["prepare", "env", "resume"]
    assert items["prepare"]["status"] == "pass"
    assert items["env"]["status"] == "fail" and "killed at the hard limit" in items["env"]["error"]
    assert items["env"]["wall_s"] < 30
    assert items["resume"]["status"] == "skip"  # needs CUDA; its CPU legs ran in their own process
    assert checks(items["resume"])["resume on cpu, amp=true (CPU stand-in)"]["status"] == "pass"
    assert (tmp_path / "gpu" / "logs" / "resume.log").is_file()


def test_a_failed_prepare_skips_what_needs_it_and_not_the_rest(tmp_path: Path) -> None:
    done, summary = run_check(tmp_path, "--items", "prepare,env,speed", "--fail-item", "prepare", timeout=120)
    assert done.returncode == 1
    items = summary["items"]
    assert items["prepare"]["status"] == "fail" and "failed on purpose" in items["prepare"]["error"]
    assert items["env"]["status"] == "pass"
    assert items["speed"]["status"] == "skip" and "prepare failed" in items["speed"]["error"]
    assert summary["counts"] == {"pass": 1, "fail": 1, "skip": 1}


def test_without_a_gpu_the_real_check_refuses_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    done = subprocess.run(
        ["bash", str(SCRIPT)],
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
