"""Every bad input is one line naming the culprit, a non-zero exit and no traceback."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iadet.cli import main

from conftest import cli_fails as _fails
from conftest import make_voc, write_voc_xml
from conftest import train_args as _train_args


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    return make_voc(tmp_path / "voc", n_train=4, n_test=2)


def test_broken_xml(broken, tmp_path, capsys):
    (broken / "Annotations" / "000001.xml").write_text("<annotation><object>")
    _fails(capsys, _train_args(broken, tmp_path / "o"), r"000001.xml: malformed XML", 2)


def test_missing_image(broken, tmp_path, capsys):
    (broken / "JPEGImages" / "000002.jpg").unlink()
    _fails(capsys, _train_args(broken, tmp_path / "o"), r"000002.jpg: image listed in the split has no file")


def test_bad_box(broken, tmp_path, capsys):
    write_voc_xml(
        broken / "Annotations" / "000003.xml", "000003.jpg", 96, 72, [{"name": "bar", "box": (50, 5, 10, 9)}]
    )
    _fails(capsys, _train_args(broken, tmp_path / "o"), r"000003.xml: object 1 \('bar'\) has xmin > xmax")


def test_unknown_class(broken, tmp_path, capsys):
    write_voc_xml(
        broken / "Annotations" / "000000.xml", "000000.jpg", 96, 72, [{"name": "dog", "box": (1, 1, 9, 9)}]
    )
    _fails(capsys, _train_args(broken, tmp_path / "o"), r"000000.xml: object 1 has unknown class 'dog'")


def test_empty_split(broken, tmp_path, capsys):
    (broken / "ImageSets" / "Main" / "trainval.txt").write_text("")
    _fails(capsys, _train_args(broken, tmp_path / "o"), r"trainval.txt: empty split file")


def test_missing_data_directory(tmp_path, capsys):
    _fails(capsys, _train_args(tmp_path / "nowhere", tmp_path / "o"), r"nowhere: data directory not found")


def test_truncated_image_file(broken, tmp_path, capsys):
    (broken / "JPEGImages" / "000001.jpg").write_bytes(b"\xff\xd8\xff")
    _fails(capsys, _train_args(broken, tmp_path / "o"), r"000001.jpg: (cannot read image|not an image)")


def test_unknown_config_key_and_wrong_type(broken, tmp_path, capsys):
    _fails(
        capsys,
        _train_args(broken, tmp_path / "o", "model.backbon=tiny"),
        r"'model.backbon'.*did you mean 'model.backbone'",
    )
    _fails(
        capsys, _train_args(broken, tmp_path / "o", "train.lr=abc"), r"train.lr: expected a number, got 'abc'"
    )


def test_unknown_method_and_backbone(broken, tmp_path, capsys):
    _fails(
        capsys,
        _train_args(broken, tmp_path / "o", "method.name=inverted"),
        r"unknown method 'inverted'; valid methods: none, .*ia",
    )
    _fails(
        capsys,
        _train_args(broken, tmp_path / "o", "model.backbone=resnet51_fpn"),
        r"unknown model.backbone 'resnet51_fpn'",
    )


def test_bad_score_thresh_and_seeds(capsys):
    for value in ("0", "-0.5", "1.5", "abc"):
        with pytest.raises(SystemExit) as exit_info:
            main(["predict", "--checkpoint", "x.pth", "img.jpg", "--output", "o", "--score-thresh", value])
        assert exit_info.value.code != 0
        assert "--score-thresh" in capsys.readouterr().err
    for value in ("0", "-2"):
        with pytest.raises(SystemExit):
            main(["compare", "--seeds", value])
        assert "--seeds: must be a positive integer" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = make_voc(tmp_path_factory.mktemp("t") / "voc", n_train=4, n_test=2)
    out = root.parent / "run"
    assert main(_train_args(root, out)) == 0
    return out


def test_truncated_checkpoint(trained, tmp_path, capsys):
    cut = tmp_path / "cut.pth"
    data = (trained / "checkpoint.pth").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    _fails(
        capsys,
        ["eval", "--checkpoint", str(cut), "--config", str(trained / "config.yaml")],
        r"cut.pth: truncated or not a checkpoint",
    )


def test_checkpoint_of_another_architecture_or_class_count(trained, tmp_path, capsys):
    state = torch.load(trained / "model_final.pth", weights_only=True)
    other = tmp_path / "other"
    other.mkdir()
    torch.save(state, other / "model_final.pth")
    config = (trained / "config.yaml").read_text()
    (other / "config.yaml").write_text(config.replace("- bar\n", "- bar\n  - third\n"))
    _fails(
        capsys,
        ["eval", "--checkpoint", str(other / "model_final.pth")],
        r"does not fit model.backbone=tiny.* with 3 classes",
    )
    (other / "config.yaml").write_text(config.replace("backbone: tiny", "backbone: mobilenet_v3_fpn"))
    _fails(
        capsys,
        ["eval", "--checkpoint", str(other / "model_final.pth")],
        r"does not fit model.backbone=mobilenet_v3_fpn",
    )


def test_bare_state_dict_without_config(trained, tmp_path, capsys):
    lone = tmp_path / "lone.pth"
    shutil.copy(trained / "model_final.pth", lone)
    _fails(
        capsys,
        ["eval", "--checkpoint", str(lone)],
        r"bare state dict and has no config.yaml beside it: pass --config",
    )


def test_data_check_lists_every_problem(broken, capsys):
    (broken / "Annotations" / "000001.xml").write_text("<annotation>")
    (broken / "JPEGImages" / "000002.jpg").unlink()
    write_voc_xml(
        broken / "Annotations" / "000004.xml", "000004.jpg", 96, 72, [{"name": "cat", "box": (1, 1, 5, 5)}]
    )
    (broken / "JPEGImages" / "000005.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    assert main(["data", "check", str(broken)]) == 1
    out = capsys.readouterr().out
    for culprit in ("000001.xml", "000002.jpg", "000004.xml", "000005.jpg"):
        assert culprit in out, culprit
    assert "4 problem(s)" in out


def test_data_check_clean_dataset(tmp_path, capsys):
    root = make_voc(tmp_path / "ok", n_train=3, n_test=2)
    assert main(["data", "check", str(root)]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_cli_in_a_subprocess_prints_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "iadet",
            "train",
            "--config",
            "quick",
            "--data",
            str(tmp_path / "missing"),
            "--output",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"iadet: error: {tmp_path / 'missing'}: data directory not found"
    ]


def test_no_user_string_reaches_a_shell():
    source = Path(__file__).resolve().parents[2] / "src" / "iadet"
    offenders = []
    for path in source.rglob("*.py"):
        text = path.read_text()
        if re.search(r"shell\s*=\s*True|os\.system\(|os\.popen\(|commands\.getoutput", text):
            offenders.append(str(path))
    assert offenders == []


def test_json_summary_is_the_last_line(trained, capsys):
    assert main(["eval", "--checkpoint", str(trained / "model_final.pth"), "--quiet"]) == 0
    assert "mAP" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_unusual_image_formats_simply_work(tmp_path, capsys):
    """Grayscale, RGBA, 16-bit PNG, CMYK JPEG and EXIF-rotated JPEG in one dataset: train and evaluate."""
    import numpy as np
    from PIL import Image

    root = make_voc(tmp_path / "voc", n_train=6, n_test=2)
    images = root / "JPEGImages"
    upright = [np.asarray(Image.open(images / f"{i:06d}.jpg").convert("RGB")) for i in range(5)]
    for i in range(5):
        (images / f"{i:06d}.jpg").unlink()
    Image.fromarray(upright[0]).convert("L").save(images / "000000.png")
    Image.fromarray(upright[1]).convert("RGBA").save(images / "000001.png")
    Image.fromarray(upright[2][..., 0].astype(np.uint16) * 257).save(images / "000002.png")
    Image.fromarray(upright[3]).convert("CMYK").save(images / "000003.jpg")
    stored = Image.fromarray(np.rot90(upright[4], k=1).copy())  # displayed upright after EXIF orientation 6
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(images / "000004.jpg", exif=exif)
    assert main(["data", "check", str(root)]) == 0, capsys.readouterr().out
    assert main(_train_args(root, tmp_path / "run")) == 0
