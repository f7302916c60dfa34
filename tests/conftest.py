"""Shared fixtures: small hand-made datasets, independent of the built-in generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("square", "bar")


def write_voc_xml(path: Path, filename: str, width: int, height: int, objects: list[dict]) -> None:
    parts = [
        "<annotation>",
        f"<filename>{filename}</filename>",
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
    ]
    for obj in objects:
        x1, y1, x2, y2 = obj["box"]
        parts.append(
            f"<object><name>{obj['name']}</name><difficult>{int(obj.get('difficult', 0))}</difficult>"
            f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    path.write_text("".join(parts), encoding="utf-8")


def make_voc(
    root: Path, n_train: int = 12, n_test: int = 6, size: tuple[int, int] = (96, 72), seed: int = 0
) -> Path:
    """A learnable toy VOC dataset: red squares and blue bars on noise, 1-based XML boxes."""
    rng = np.random.default_rng(seed)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    width, height = size
    splits = {"trainval": [], "test": []}
    for i in range(n_train + n_test):
        split = "trainval" if i < n_train else "test"
        image = (rng.random((height, width, 3)) * 60).astype(np.uint8)
        objects = []
        for k in range(2):
            name = CLASSES[(i + k) % 2]
            w, h = (24, 24) if name == "square" else (36, 12)
            x = int(rng.integers(0, width - w)) if k == 0 else int(rng.integers(0, width - w))
            y = 4 + k * (height // 2)
            y = min(y, height - h)
            image[y : y + h, x : x + w] = (220, 40, 40) if name == "square" else (40, 60, 220)
            objects.append({"name": name, "box": (x + 1, y + 1, x + w, y + h)})
        image_id = f"{i:06d}"
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        write_voc_xml(root / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", width, height, objects)
        splits[split].append(image_id)
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return root


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    return make_voc(tmp_path / "voc")


@pytest.fixture(scope="session")
def shared_voc(tmp_path_factory) -> Path:
    """One toy dataset for the whole session (read-only)."""
    return make_voc(tmp_path_factory.mktemp("shared") / "voc", n_train=16, n_test=8)


def tiny_overrides(root: Path, out_iters: int = 4) -> list[str]:
    """Overrides that make a train run take seconds on CPU."""
    return [
        f"data.root={root}",
        "data.num_workers=0",
        "model.backbone=tiny",
        "model.min_size=72",
        "model.max_size=96",
        "model.rpn_pre_nms_top_n_train=200",
        "model.rpn_post_nms_top_n_train=100",
        "model.rpn_pre_nms_top_n_test=100",
        "model.rpn_post_nms_top_n_test=50",
        "model.box_batch_size_per_image=32",
        f"train.max_iters={out_iters}",
        "train.batch_size=2",
        "train.lr=0.01",
        "train.lr_steps=[3]",
        "train.warmup_iters=2",
        "train.log_every=1",
        "train.checkpoint_every=2",
        "eval.batch_size=4",
    ]


def at_step(method, iteration: int, max_iters: int) -> None:
    """Put a method at training step ``iteration`` of a run of ``max_iters``, as its first forward of
    that step does (:meth:`iadet.modeling.methods.RoIMethod.begin_step`)."""
    method.max_iters = max_iters
    method.set_iteration(iteration)
    method.begin_step()


def sigterm_at(monkeypatch, iteration: int) -> None:
    """Deliver a real SIGTERM to this process once ``iadet train`` has logged ``iteration``."""
    import os
    import signal

    from iadet.engine import training_run

    original = training_run.MetricsWriter.log

    def log(self, row):
        original(self, row)
        if row.get("type") == "train" and row["iter"] == iteration:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(training_run.MetricsWriter, "log", log)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# CI runs must not depend on the examples hypothesis happens to draw: every run draws the same ones.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("iadet", derandomize=True)
_hypothesis_settings.load_profile("iadet")


def cli_fails(capsys, args: list[str], pattern: str, code: int | None = None) -> str:
    """Run the CLI on ``args`` and check it refused in one line matching ``pattern``, without a traceback."""
    import re

    from iadet.cli import main

    status = main(args)
    err = capsys.readouterr().err.strip()
    assert status != 0, f"{args} succeeded"
    if code is not None:
        assert status == code, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert re.search(pattern, err), err
    return err


def train_args(root: Path, out: Path, *extra: str) -> list[str]:
    """``iadet train`` arguments for a one-iteration tiny run on ``root``."""
    args = ["train", "--config", "quick", "--output", str(out), "--quiet"]
    for o in tiny_overrides(root, 1) + list(extra):
        args += ["--set", o]
    return args


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as a module (the scripts are not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dead_owner() -> str:
    """A lock file's owner text (``host pid``) naming a process of this host that has ended (a ``kill -9``)."""
    import socket
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return f"{socket.gethostname()} {gone.pid}"


@pytest.fixture
def clean_registry():
    """The method registry (``iadet.config.methods``) as it was, built-in methods discovered, once the test is
    done: whatever the test registers is gone afterwards."""
    from iadet.config.methods import IMPLEMENTATIONS, METHOD_PRESETS, discover_methods

    discover_methods()  # the built-in methods first, as any lookup would
    presets, implementations = dict(METHOD_PRESETS), dict(IMPLEMENTATIONS)
    yield
    METHOD_PRESETS.clear()
    METHOD_PRESETS.update(presets)
    IMPLEMENTATIONS.clear()
    IMPLEMENTATIONS.update(implementations)
