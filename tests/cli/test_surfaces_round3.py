"""The surfaces added since round two, through the CLI, with bad input: ensembles of checkpoints that
disagree, ``analyze`` and ``visualize asdn`` on checkpoints or data they cannot use, ``compare
--finished-only`` on a runs directory with broken result files. Each is refused in one line naming the
culprit, before any image is read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from iadet.cli import main

from conftest import cli_fails, make_voc, train_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny one-iteration runs: ``a`` (none), ``b`` (the classes in another order), ``e`` (Fast R-CNN)."""
    base = tmp_path_factory.mktemp("surfaces")
    root = make_voc(base / "voc", n_train=4, n_test=2)
    assert (
        main(["proposals", "--data", str(root), "--output", str(base / "p.npz"), "--max-proposals", "50"])
        == 0
    )
    extra = {
        "a": [],
        "b": ["data.classes=[bar, square]"],
        "e": ["model.detector=fast_rcnn", f"data.proposals={base / 'p.npz'}"],
    }
    out = {"voc": root}
    for name, sets in extra.items():
        out[name] = base / name
        assert main(train_args(root, out[name], "train.eval_at_end=false", *sets)) == 0
    return out


def test_ensemble_of_checkpoints_with_other_classes(runs, capsys):
    a, b = runs["a"] / "model_final.pth", runs["b"] / "model_final.pth"
    cli_fails(
        capsys,
        ["eval", "--checkpoint", str(a), "--checkpoint", str(b)],
        rf"{b} predicts other classes than {a} \(the same \d+ classes in another order\)",
        2,
    )


def test_ensemble_of_fast_rcnn_and_faster_rcnn(runs, capsys):
    a, e = runs["a"] / "model_final.pth", runs["e"] / "model_final.pth"
    cli_fails(
        capsys,
        ["eval", "--checkpoint", str(a), "--checkpoint", str(e)],
        rf"cannot ensemble {e} \(Fast R-CNN, proposals from a file\) with {a}, which proposes for itself",
        2,
    )


def test_visualize_asdn_on_a_run_without_an_asdn(runs, tmp_path, capsys):
    args = ["visualize", "asdn", "--checkpoint", str(runs["a"] / "model_final.pth"), "--split", "test"]
    cli_fails(
        capsys, [*args, "--output", str(tmp_path / "v")], r"checkpoint.pth: method 'none' has no ASDN", 2
    )


def test_analyze_parts_on_data_without_parts(runs, tmp_path, capsys):
    args = [
        "analyze",
        "parts",
        "--checkpoint",
        str(runs["a"] / "model_final.pth"),
        "--data",
        str(runs["voc"]),
    ]
    cli_fails(
        capsys,
        [*args, "--output", str(tmp_path / "p"), "--quiet"],
        r"part reliance needs the built-in data",
        2,
    )


def test_analyze_errors_on_an_empty_split(runs, tmp_path, capsys):
    empty = tmp_path / "voc"
    shutil.copytree(runs["voc"], empty)
    (empty / "ImageSets" / "Main" / "test.txt").write_text("")
    args = ["analyze", "errors", "--checkpoint", str(runs["a"] / "model_final.pth"), "--data", str(empty)]
    cli_fails(capsys, [*args, "--output", str(tmp_path / "o")], r"test.txt: empty split file", 2)


_TINY = [
    "data.num_workers=0", "model.backbone=tiny", "model.min_size=72", "model.max_size=96", "train.max_iters=2",
    "train.batch_size=2", "train.warmup_iters=1", "train.lr_steps=[1]", "train.checkpoint_every=2",
    "eval.batch_size=4",
]  # fmt: skip


def _compare(root: Path, output: Path, *extra: str) -> list[str]:
    args = ["compare", "--preset", "quick", "--methods", "none", "--seeds", "1", "--data", str(root)]
    for s in _TINY:
        args += ["--set", s]
    return [*args, "--output", str(output), "--quiet", *extra]


def test_compare_finished_only_with_a_truncated_result(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(_compare(runs["voc"], out)) == 0
    result = next((out / "runs" / "none" / "seed0").glob("eval*.json"))
    result.write_text(result.read_text()[:40])
    capsys.readouterr()
    cli_fails(capsys, _compare(runs["voc"], out, "--finished-only"), rf"{result.name}", 2)


def test_compare_finished_only_with_a_non_finite_result(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(_compare(runs["voc"], out)) == 0
    result = next((out / "runs" / "none" / "seed0").glob("eval*.json"))
    data = json.loads(result.read_text())
    data["mAP"] = float("nan")
    result.write_text(json.dumps(data))
    capsys.readouterr()
    cli_fails(capsys, _compare(runs["voc"], out, "--finished-only"), rf"{result.name}", 2)


def test_compare_refuses_a_seed_directory_that_leads_out_of_its_tree(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(_compare(runs["voc"], out)) == 0
    seed = out / "runs" / "none" / "seed0"
    elsewhere = tmp_path / "elsewhere"
    seed.rename(elsewhere)
    seed.symlink_to(elsewhere, target_is_directory=True)
    capsys.readouterr()
    cli_fails(capsys, _compare(runs["voc"], out, "--finished-only"), r"seed0: leads outside .*refused", 2)
