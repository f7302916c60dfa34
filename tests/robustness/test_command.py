"""End-to-end tests of ``iadet robustness`` on a detector trained for a few iterations on the toy data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iadet.cli import main
from iadet.config import load_config
from iadet.data.catalog import open_split
from iadet.engine.inference import evaluate
from iadet.engine.loading import load_detector
from iadet.engine.training_run import train
from iadet.robustness import evaluate as robustness_evaluate

from conftest import make_voc, tiny_overrides

pytestmark = pytest.mark.slow


def left_occluder(image: np.ndarray, boxes: np.ndarray, fraction: float, rng: np.random.Generator):
    """Greys the left ``fraction`` of every box's width (a stand-in for the built-in occluders)."""
    covered = np.zeros(len(boxes))
    for k, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(int)):
        cols = int(round(fraction * (x2 - x1 + 1)))
        image[y1 : y2 + 1, x1 : x1 + cols] = 128
        covered[k] = cols / (x2 - x1 + 1)
    return image, covered


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("robustness-cli")
    root = make_voc(base / "voc", n_train=8, n_test=4)
    checkpoints = []
    for name, method in (("none", "none"), ("ia", "ia")):
        overrides = tiny_overrides(root, 4) + [f"method.name={method}", "train.eval_at_end=false"]
        train(load_config(None, overrides), base / name, quiet=True)
        checkpoints.append(str(base / name / "model_final.pth"))
    return root, checkpoints


def test_corruption_benchmark(runs, tmp_path: Path) -> None:
    root, (ckpt, _) = runs
    out = tmp_path / "out"
    args = [
        "robustness",
        "--checkpoint",
        ckpt,
        "--data",
        str(root),
        "--corruptions",
        "gaussian_noise,brightness",
    ]
    args += ["--severities", "1,3", "--max-images", "3", "--num-workers", "0", "--output", str(out), "-q"]
    assert main(args) == 0
    result = json.loads((out / "robustness.json").read_text())
    assert {"P", "mPC", "rPC", "corruptions", "groups", "complete", "metric", "images", "label"} <= set(
        result
    )
    assert result["metric"] == "voc07" and result["images"] == 3 and result["label"] == "none"
    assert list(result["corruptions"]) == ["gaussian_noise", "brightness"]
    assert list(result["corruptions"]["brightness"]) == ["1", "3"]
    assert result["complete"] is False  # 2 of the 5 severities
    cells = [v for row in result["corruptions"].values() for v in row.values()]
    assert result["mPC"] == pytest.approx(np.mean(cells))
    model, cfg = load_detector(ckpt)
    clean = evaluate(model, open_split(root, "test"), "cpu", max_images=3, num_workers=0)
    assert result["P"] == pytest.approx(clean["mAP"])
    with Image.open(out / "severity.png") as image:
        assert image.size == (800, 360)  # two groups (noise, weather) of 4 x 3.6 inches at 100 dpi
    assert not (out / "occlusion.json").exists()


def test_several_metrics_score_one_pass_as_separate_runs_do(runs, tmp_path: Path) -> None:
    """``--metric coco,voc07`` writes OUTPUT/<metric>/robustness.json, each equal to a run with that metric alone
    (the numbers themselves are compared on a detector that finds something in test_evaluate.py)."""
    root, (ckpt, _) = runs
    common = ["robustness", "--checkpoint", ckpt, "--data", str(root), "--corruptions", "gaussian_noise,fog"]
    common += ["--severities", "2,5", "--max-images", "3", "--num-workers", "0", "-q"]
    assert main([*common, "--metric", "coco,voc07", "--output", str(tmp_path / "both")]) == 0
    assert not (tmp_path / "both" / "robustness.json").exists()
    for metric in ("coco", "voc07"):
        assert main([*common, "--metric", metric, "--output", str(tmp_path / metric)]) == 0
        alone = json.loads((tmp_path / metric / "robustness.json").read_text())
        together = json.loads((tmp_path / "both" / metric / "robustness.json").read_text())
        assert together["metric"] == metric
        for key in ("P", "mPC", "rPC", "corruptions", "groups"):
            assert together[key] == alone[key], key
        assert (tmp_path / "both" / metric / "severity.png").is_file()


@pytest.mark.parametrize("bad", ["coco,coco", "map", ""])
def test_bad_metric_list_is_one_line(runs, tmp_path: Path, bad: str, capsys) -> None:
    root, (ckpt, _) = runs
    with pytest.raises(SystemExit) as exit_info:
        main(["robustness", "--checkpoint", ckpt, "--metric", bad, "--output", str(tmp_path / "o")])
    assert exit_info.value.code == 2 and "--metric" in capsys.readouterr().err


def test_occlusion_sweep_one_curve_per_checkpoint(runs, tmp_path: Path, monkeypatch) -> None:
    root, checkpoints = runs
    monkeypatch.setattr(robustness_evaluate, "default_occluder", lambda: left_occluder)
    out = tmp_path / "occ"
    args = ["robustness", "--checkpoint", *checkpoints, "--label", "base", "IA", "--data", str(root)]
    args += ["--occlusion", "0,0.5", "--num-workers", "0", "--output", str(out), "-q"]
    assert main(args) == 0
    result = json.loads((out / "occlusion.json").read_text())
    assert result["fractions"] == [0.0, 0.5] and list(result["curves"]) == ["base", "IA"]
    np.testing.assert_allclose(result["coverage"], [0.0, 0.5], atol=0.05)
    assert all(len(c["mAP"]) == 2 for c in result["curves"].values())
    with Image.open(out / "occlusion.png") as image:
        assert image.size == (600, 400)
    assert not (out / "robustness.json").exists()  # only --occlusion was asked for


def test_second_checkpoint_reuses_the_cache(runs, tmp_path: Path, monkeypatch) -> None:
    root, checkpoints = runs
    cache = tmp_path / "cache"
    args = ["robustness", "--checkpoint", *checkpoints, "--data", str(root), "--cache", str(cache)]
    args += [
        "--corruptions",
        "gaussian_noise",
        "--severities",
        "2",
        "--max-images",
        "3",
        "--num-workers",
        "0",
    ]
    calls = []
    real = robustness_evaluate.corrupt
    monkeypatch.setattr(robustness_evaluate, "corrupt", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main([*args, "--output", str(tmp_path / "a"), "-q"]) == 0
    assert len(calls) == 3  # 3 images corrupted once, for the first checkpoint only
    assert len(list(cache.rglob("*.png"))) == 3
    assert main([*args, "--output", str(tmp_path / "b"), "-q"]) == 0  # a rerun computes nothing
    assert len(calls) == 3
    for label in ("none", "ia"):
        a = json.loads((tmp_path / "a" / label / "robustness.json").read_text())
        b = json.loads((tmp_path / "b" / label / "robustness.json").read_text())
        assert a["corruptions"] == b["corruptions"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--corruptions", "gausian_noise"], "did you mean 'gaussian_noise'"),
        (["--severities", "0,1"], "outside 1 to 5"),
        (["--occlusion", "0,1.5"], "outside [0, 1]"),
        (["--label", "a", "b"], "2 names for 1 checkpoints"),
        (["--cache", __file__], "not a directory"),
    ],
)
def test_bad_arguments_are_one_line_errors(runs, tmp_path: Path, capsys, extra, message) -> None:
    _, (ckpt, _) = runs
    assert main(["robustness", "--checkpoint", ckpt, "--output", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
