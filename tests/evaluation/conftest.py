"""Fixtures for the evaluation tests: the benchmark's reference port, and devkit files on disk."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from iadet.cli import main


@pytest.fixture(scope="session")
def reference():
    """``benchmarks/voc_eval_speed.py``, whose ``reference_voc_eval`` is the devkit loop, ported plainly."""
    from conftest import load_benchmark

    return load_benchmark("voc_eval_speed")


def xml_text(objects: list[dict]) -> str:
    """A VOC annotation; each object ``{"name", "box": 1-based (x1, y1, x2, y2), "difficult"?}``.

    ``difficult`` None leaves the tag out.
    """
    parts = ["<annotation><filename>x.jpg</filename><size><width>500</width><height>375</height></size>"]
    for obj in objects:
        x1, y1, x2, y2 = obj["box"]
        difficult = obj.get("difficult", 0)
        tag = "" if difficult is None else f"<difficult>{int(difficult)}</difficult>"
        parts.append(
            f"<object><name>{obj['name']}</name><pose>Left</pose>{tag}"
            f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    return "".join(parts)


@pytest.fixture
def voc_dir(tmp_path: Path) -> Callable[..., Path]:
    """``make(annotations: {image_id: [objects]}, detections: {class: [lines]} | None) -> root``.

    Writes ``root/Annotations/<id>.xml``, ``root/test.txt`` (the ids in order) and, for each
    class given, ``root/det/comp4_det_test_<class>.txt``.
    """

    def make(annotations: dict[str, list[dict]], detections: dict[str, list[str]] | None = None) -> Path:
        root = tmp_path / "voc"
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "det").mkdir(exist_ok=True)
        for image_id, objects in annotations.items():
            (root / "Annotations" / f"{image_id}.xml").write_text(xml_text(objects), encoding="utf-8")
        (root / "test.txt").write_text("".join(f"{i}\n" for i in annotations), encoding="utf-8")
        for name, lines in (detections or {}).items():
            (root / "det" / f"comp4_det_test_{name}.txt").write_text("".join(f"{x}\n" for x in lines))
        return root

    return make


@pytest.fixture
def run_voc_eval(capsys) -> Callable[..., tuple[int, str, str, dict | None]]:
    """``run(root, *extra_args) -> (exit code, stdout, stderr, last-line JSON or None)``."""

    def run(root: Path, *extra: str, detections: str | None = None) -> tuple[int, str, str, dict | None]:
        args = [
            "voc-eval",
            "--annotations", str(root / "Annotations"),
            "--image-set", str(root / "test.txt"),
            "--detections", detections or str(root / "det" / "comp4_det_test_{}.txt"),
            *extra,
        ]  # fmt: skip
        code = main(args)
        out, err = capsys.readouterr()
        lines = out.strip().splitlines()
        payload = json.loads(lines[-1]) if code == 0 and lines else None
        return code, out, err, payload

    return run


def to_ground_truth(annotations: dict[str, list[dict]], classes: tuple[str, ...]) -> dict[str, dict]:
    """In-memory 0-based ground truth (the loader's form) of the same objects as :func:`xml_text`."""
    out = {}
    for image_id, objects in annotations.items():
        objects = [obj for obj in objects if obj["name"] in classes]
        out[image_id] = {
            "boxes": np.array([obj["box"] for obj in objects], dtype=np.float64).reshape(-1, 4) - 1.0,
            "labels": np.array([classes.index(obj["name"]) + 1 for obj in objects], dtype=np.int64),
            "difficult": np.array([bool(obj.get("difficult") or 0) for obj in objects], dtype=bool),
        }
    return out


@pytest.fixture
def as_ground_truth() -> Callable[[dict[str, list[dict]], tuple[str, ...]], dict[str, dict]]:
    """:func:`to_ground_truth`, for tests (helpers in a conftest cannot be imported)."""
    return to_ground_truth
