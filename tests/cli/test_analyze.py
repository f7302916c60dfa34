"""End-to-end test of ``iadet analyze errors`` on two detectors trained for a few iterations on the toy data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from iadet.cli import main
from iadet.config import load_config
from iadet.engine.training_run import train

from conftest import make_voc, tiny_overrides

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("analyze-cli")
    root = make_voc(base / "voc", n_train=8, n_test=3)
    for name, seed in (("first", 0), ("second", 1)):
        overrides = tiny_overrides(root, 4) + ["train.eval_at_end=false", f"train.seed={seed}"]
        train(load_config(None, overrides), base / name, quiet=True)
    return base, root


def test_analyze_errors_of_two_checkpoints(runs, tmp_path: Path, capsys) -> None:
    base, root = runs
    a, b = (str(base / name / "model_final.pth") for name in ("first", "second"))
    out = tmp_path / "analysis"
    args = ["analyze", "errors", "--checkpoint", a, "--checkpoint", b, "--data", str(root), "--split", "test"]
    assert main([*args, "--score-threshold", "0.05", "--top", "4", "--tile", "48", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| first |" in printed and "| second |" in printed and "Cls" in printed
    summary = json.loads(printed.strip().splitlines()[-1])
    assert set(summary["AP"]) == {"first", "second"}

    result = json.loads((out / "errors.json").read_text())
    assert result["split"] == "test" and result["images"] == 3
    assert [d["label"] for d in result["detectors"]] == ["first", "second"]
    for detector in result["detectors"]:
        breakdown = detector["breakdown"]
        assert set(breakdown["dap"]) == {"cls", "loc", "both", "dupe", "bkg", "missed"}
        assert set(breakdown["dap"]["cls"]["per_class"]) == {"square", "bar"}
        # an oracle fixing one error type lifts AP by at most what is missing, and fixing all of them to <= 1
        ap, ceiling = breakdown["ap"]["overall"], breakdown["ap_all_fixed"]["overall"]
        assert ap <= ceiling <= 1.0 + 1e-9
        assert all(-1e-9 <= v["overall"] <= 1.0 - ap + 1e-9 for v in breakdown["dap"].values())
        assert set(detector["pr_curves"]) == {"square", "bar"}
        matrix = detector["confusion_matrix"]["matrix"]
        assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
        # every non-difficult box is in exactly one cell of its row
        assert sum(map(sum, matrix[:2])) == 6
        for png in detector["png"].values():
            assert (out / png).stat().st_size > 1000
    # the breakdown starts from the AP `iadet eval --metric voc` reports
    eval_json = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", a, "--data", str(root), "--split", "test", "--metric", "voc",
                 "--output", str(eval_json), "-q"]) == 0  # fmt: skip
    evaluated = json.loads(eval_json.read_text())
    assert result["detectors"][0]["breakdown"]["ap"]["overall"] == pytest.approx(evaluated["mAP"])

    differences = result["differences"]
    assert [(d["wrong"], d["right"]) for d in differences] == [("first", "second"), ("second", "first")]
    for d in differences:
        assert len(d["errors"]) <= 4
        assert all(e["kind"] in ("cls", "loc", "both", "dupe", "bkg") for e in d["errors"])
        scores = [e["score"] for e in d["errors"]]
        assert scores == sorted(scores, reverse=True)
        with Image.open(out / d["png"]) as sheet:
            assert sheet.format == "PNG"


def test_analyze_errors_refuses_bad_input_in_one_line(runs, tmp_path: Path, capsys) -> None:
    base, root = runs
    ckpt = str(base / "first" / "model_final.pth")

    def fails(args: list[str], pattern: str) -> None:
        assert main(["analyze", "errors", *args]) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err and pattern in err, err

    fails(["--checkpoint", str(tmp_path / "missing.pth"), "--output", str(tmp_path / "o")], "missing.pth")
    blocker = tmp_path / "file"
    blocker.write_text("")
    fails(["--checkpoint", ckpt, "--data", str(root), "--output", str(blocker)], "not a directory")
    fails(["--checkpoint", ckpt] * 3 + ["--output", str(tmp_path / "o")], "one or two --checkpoint")
    fails(["--checkpoint", ckpt, "--label", "a", "--label", "b", "--output", str(tmp_path / "o")], "--label")
    assert not (tmp_path / "o").exists()
