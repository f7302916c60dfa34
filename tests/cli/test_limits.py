"""Inputs built to exhaust resources or slip past checks: each is refused through the CLI in one line,
with a non-zero exit, the culprit named, no traceback, and quickly."""

from __future__ import annotations

import os
import pickle
import signal
import stat
import time
from pathlib import Path

import pytest
import torch

import iadet.engine.training_run as trainer_module
from iadet.cli import main

from conftest import cli_fails as _fails
from conftest import make_voc
from conftest import train_args as _train_args


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    return make_voc(tmp_path / "voc", n_train=4, n_test=2)


# ----------------------------------------------------------------------------------------------
# config values


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("train.batch_size=-1", r"train.batch_size must be >= 1, got -1"),
        ("eval.batch_size=0", r"eval.batch_size must be >= 1, got 0"),
        ("train.max_iters=0", r"train.max_iters must be >= 1, got 0"),
        ("train.lr=-1", r"train.lr must be > 0, got -1"),
        ("train.lr=.nan", r"train.lr: expected a finite number, got nan"),
        ("train.weight_decay=-0.1", r"train.weight_decay must be >= 0"),
        ("train.lr_steps=[1, -3]", r"train.lr_steps must be >= 0, got -3"),
        ("model.box_nms_thresh=.inf", r"model.box_nms_thresh: expected a finite number, got inf"),
    ],
)
def test_config_values_out_of_range(voc, tmp_path, capsys, override, pattern):
    _fails(capsys, _train_args(voc, tmp_path / "o", override), pattern, 2)
    assert not (tmp_path / "o").exists(), "refused before any work"


def test_batch_larger_than_the_training_set(voc, tmp_path, capsys):
    _fails(
        capsys,
        _train_args(voc, tmp_path / "o", "train.batch_size=5"),
        r"train.batch_size=5 is larger than the training split trainval \(4 images\)",
        2,
    )
    assert not (tmp_path / "o" / "checkpoint.pth").exists()


def _alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]")
    return "\n".join(lines) + f"\ntrain:\n  lr: *a{levels - 1}\n"


def test_yaml_alias_bomb_refused_quickly(voc, tmp_path, capsys):
    config = tmp_path / "bomb.yaml"
    config.write_text(_alias_bomb())  # ~400 bytes, 9**9 strings once expanded
    assert config.stat().st_size < 1000
    start = time.perf_counter()
    args = ["train", "--config", str(config), "--output", str(tmp_path / "o"), "--set", f"data.root={voc}"]
    err = _fails(capsys, args, r"bomb.yaml: refused: more than 100000 nodes once aliases are expanded", 2)
    assert time.perf_counter() - start < 2 and len(err) < 300


def test_yaml_recursive_alias_deep_nesting_and_encoding(voc, tmp_path, capsys):
    cases = {
        "rec.yaml": ("a: &a [*a]\n", r"rec.yaml: refused: an alias refers to a node that contains it"),
        "deep.yaml": (
            "train:\n  lr: " + "[" * 3000 + "]" * 3000 + "\n",
            r"deep.yaml: refused: .*nested deeper",
        ),
        "latin.yaml": ("train:\n  lr: 0.5 # caf\xe9\n", r"latin.yaml: not UTF-8 text \(byte offset 22\)"),
    }
    for name, (text, pattern) in cases.items():
        path = tmp_path / name
        path.write_bytes(text.encode("latin-1"))
        _fails(capsys, ["train", "--config", str(path), "--output", str(tmp_path / "o")], pattern, 2)


def test_yaml_with_bom_and_crlf_is_read(tmp_path):
    from iadet.config import load_config

    path = tmp_path / "win.yaml"
    path.write_bytes("\ufefftrain:\r\n  lr: 0.25\r\n".encode())
    assert load_config(str(path)).train.lr == 0.25


def test_wrong_type_message_never_prints_a_huge_value(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("train:\n  lr: [" + ", ".join(["[1, 2, 3, 4, 5]"] * 2000) + "]\n")
    err = _fails(capsys, ["train", "--config", str(path), "--output", str(tmp_path / "o")], r"train.lr", 2)
    assert len(err) < 300


# ----------------------------------------------------------------------------------------------
# pickles: checkpoints and proposals


def _memo_bomb(levels: int = 40) -> list:
    value: list = [0] * 10
    for _ in range(levels):
        value = [value] * 10  # 10**40 items once walked, a kilobyte pickled
    return value


def test_checkpoint_memo_bomb_refused_before_unpickling(tmp_path, capsys):
    bad = tmp_path / "bomb.pth"
    torch.save({"model": {}, "config": {"train": {"lr": _memo_bomb()}}}, bad)
    start = time.perf_counter()
    _fails(
        capsys,
        ["eval", "--checkpoint", str(bad), "--config", "quick"],
        r"bomb.pth: cannot load checkpoint: it reuses a list, dict or other container",
        2,
    )
    assert time.perf_counter() - start < 2


def test_proposal_memo_bomb_refused(voc, tmp_path, capsys):
    bad = tmp_path / "bomb.pkl"
    bad.write_bytes(pickle.dumps({"000000": _memo_bomb()}, protocol=2))
    assert bad.stat().st_size < 2000
    _fails(
        capsys,
        _train_args(voc, tmp_path / "o", "model.detector=fast_rcnn", f"data.proposals={bad}"),
        r"bomb.pkl: not a proposal pickle \(it reuses a list",
        2,
    )


# ----------------------------------------------------------------------------------------------
# checkpoints written by training


def test_stale_temporaries_removed_and_checkpoints_follow_the_umask(voc, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".checkpoint.pth.abc123.tmp"
    stale.write_bytes(b"\0" * 1000)  # what a kill -9 during a save leaves
    other = out / "notes.tmp"
    other.write_text("not ours")
    old = os.umask(0o022)
    try:
        assert main(_train_args(voc, out, "train.eval_at_end=false")) == 0
    finally:
        os.umask(old)
    assert not stale.exists() and other.exists()
    for name in ("checkpoint.pth", "model_final.pth"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_non_finite_weights_are_never_saved(voc, tmp_path, capsys, monkeypatch):
    original = trainer_module.Trainer.run_step

    def poisoned(self):
        original(self)
        with torch.no_grad():
            next(p for p in self.model.parameters() if p.is_floating_point()).fill_(float("nan"))

    monkeypatch.setattr(trainer_module.Trainer, "run_step", poisoned)
    out = tmp_path / "o"
    _fails(capsys, _train_args(voc, out), r"the weights are not finite at iteration 1 \(.* holds NaN", 1)
    assert not (out / "model_final.pth").exists() and not (out / "checkpoint.pth").exists()


# ----------------------------------------------------------------------------------------------
# signals


def test_sigterm_during_the_final_evaluation_stops_at_once(voc, tmp_path, capsys, monkeypatch):
    def slow_evaluation(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # an evaluation that would take long
        raise AssertionError("the signal did not stop the evaluation")

    monkeypatch.setattr(trainer_module, "evaluate_split", slow_evaluation)
    out = tmp_path / "o"
    start = time.perf_counter()
    err = _fails(
        capsys,
        _train_args(voc, out),
        r"interrupted by SIGTERM during the final evaluation; .*model_final.pth is saved, eval.json is not",
        128 + signal.SIGTERM,
    )
    assert time.perf_counter() - start < 20, err
    assert (out / "model_final.pth").exists() and not (out / "eval.json").exists()


# ----------------------------------------------------------------------------------------------
# images: declared size checked before decoding


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG of a few dozen bytes whose header declares ``width x height`` (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("width", "height", "shown"), [(20000, 20000, "400.0"), (10000, 5000, "50.0")])
def test_decompression_bomb_refused_naming_the_file(voc, tmp_path, capsys, width, height, shown):
    (voc / "JPEGImages" / "000001.jpg").unlink()
    _png_header_only(voc / "JPEGImages" / "000001.png", width, height)
    start = time.perf_counter()
    _fails(
        capsys,
        _train_args(voc, tmp_path / "o"),
        rf"000001.png: image declares .*{shown} megapixels, more than data.max_image_pixels=40000000",
        2,
    )
    assert time.perf_counter() - start < 10
    # the limit is configurable (here: lowered below the toy images)
    (voc / "JPEGImages" / "000001.png").unlink()
    _fails(
        capsys,
        _train_args(voc, tmp_path / "o", "data.max_image_pixels=1000"),
        r"000000.jpg: image declares 96x72 = 0.0 megapixels, more than data.max_image_pixels=1000",
        2,
    )


def test_predict_refuses_a_bomb(voc, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(voc, run, "train.eval_at_end=false")) == 0
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 20000, 20000)
    _fails(
        capsys,
        ["predict", "--checkpoint", str(run / "model_final.pth"), str(bomb), "--output", str(tmp_path / "p")],
        r"bomb.png: image declares 400.0 megapixels",
        2,
    )


# ----------------------------------------------------------------------------------------------
# annotation numbers


def test_voc_size_must_be_a_finite_whole_number(voc, tmp_path, capsys):
    xml = voc / "Annotations" / "000002.xml"
    xml.write_text(xml.read_text().replace("<width>96</width>", "<width>NaN</width>"))
    _fails(capsys, _train_args(voc, tmp_path / "o"), r"000002.xml: <size> has a bad <width>: 'NaN'", 2)
    xml.write_text(xml.read_text().replace("<width>NaN</width>", "<width>96.5</width>"))
    _fails(capsys, _train_args(voc, tmp_path / "o"), r"000002.xml: <size> has a bad <width>: '96.5'", 2)


def test_voc_nan_coordinate_and_difficult(voc, tmp_path, capsys):
    xml = voc / "Annotations" / "000003.xml"
    text = xml.read_text()
    xml.write_text(
        text.replace("<xmin>", "<xmin>nan", 1).replace("</xmin>", "", 1).replace("<ymin>", "</xmin><ymin>", 1)
    )
    _fails(capsys, _train_args(voc, tmp_path / "o"), r"000003.xml: object 1 .* has a bad <xmin>", 2)
    xml.write_text(text.replace("<difficult>0</difficult>", "<difficult>nan</difficult>", 1))
    _fails(
        capsys, _train_args(voc, tmp_path / "o"), r"000003.xml: object 1 .* has a bad <difficult>: 'nan'", 2
    )


def _coco(root: Path, data: dict) -> Path:
    import json

    from PIL import Image

    (root / "annotations").mkdir(parents=True)
    (root / "val").mkdir()
    Image.new("RGB", (50, 40)).save(root / "val" / "a.jpg")
    (root / "annotations" / "instances_val.json").write_text(json.dumps(data))
    return root


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"images": [{"id": 1, "file_name": "a.jpg", "width": "50", "height": 40}]},
         r"instances_val.json: image 1 field 'width' must be a whole number, got \"50\""),
        ({"annotations": ["box"]}, r"instances_val.json: annotation 0 must be a JSON object, got str"),
        ({"annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 1, "NaN", 4]}]},
         r"annotation 7 field 'bbox' must be \[x, y, width, height\] of finite numbers"),
        ({"images": [{"id": 1, "file_name": "../a.jpg", "width": 50, "height": 40}]},
         r"image 1 file_name '../a.jpg' is not a plain file name \(refused\)"),
    ],
)  # fmt: skip
def test_coco_numbers_types_and_names(tmp_path, capsys, change, pattern):
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 50, "height": 40}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}],
        "categories": [{"id": 1, "name": "cat"}],
        **change,
    }
    root = _coco(tmp_path / "coco", data)
    args = _train_args(root, tmp_path / "o", "data.train_split=val", "data.test_split=val")
    _fails(capsys, args, pattern, 2)


# ----------------------------------------------------------------------------------------------
# paths and text files


def test_voc_eval_refuses_an_id_that_escapes(tmp_path, capsys):
    root = make_voc(tmp_path / "voc", n_train=2, n_test=1)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.xml").write_text((root / "Annotations" / "000000.xml").read_text())
    image_set = root / "ImageSets" / "Main" / "test.txt"
    image_set.write_text("000002\n../../outside/x\n")
    _fails(
        capsys,
        ["voc-eval", "--annotations", str(root / "Annotations"), "--image-set", str(image_set),
         "--detections", str(tmp_path / "det_{}.txt"), "--classes", "square,bar"],
        r"test.txt:2: image id '../../outside/x' is not a plain file name \(refused\)",
        2,
    )  # fmt: skip


def test_symlink_out_of_the_dataset_refused_unless_allowed(voc, tmp_path, capsys):
    outside = tmp_path / "elsewhere.jpg"
    image = voc / "JPEGImages" / "000001.jpg"
    image.rename(outside)
    image.symlink_to(outside)
    _fails(
        capsys,
        _train_args(voc, tmp_path / "o", "train.eval_at_end=false"),
        r"000001.jpg: the image is a symbolic link leading outside the dataset .*data.follow_symlinks=true",
        2,
    )
    args = _train_args(voc, tmp_path / "o2", "train.eval_at_end=false", "data.follow_symlinks=true")
    assert main(args) == 0


def test_split_with_bom_and_crlf_other_encodings_and_spaces(voc, tmp_path, capsys):
    split = voc / "ImageSets" / "Main" / "trainval.txt"
    split.write_bytes(b"\xef\xbb\xbf000000\r\n000001\r\n000002\r\n000003\r\n")
    assert main(_train_args(voc, tmp_path / "ok", "train.eval_at_end=false")) == 0
    split.write_bytes(b"000000\n00000\xe9\n")
    _fails(
        capsys,
        _train_args(voc, tmp_path / "o"),
        r"trainval.txt: not UTF-8 text \(byte e9 at byte offset 12\)",
        2,
    )
    split.write_text("000000\nmy image\n")
    _fails(
        capsys,
        _train_args(voc, tmp_path / "o"),
        r"trainval.txt:2: image ids cannot contain spaces, got 'my image'",
        2,
    )
    split.write_text("000000\n000001\n")
    (voc / "classes.txt").write_bytes(b"square\nb\xe4r\n")
    _fails(
        capsys,
        _train_args(voc, tmp_path / "o"),
        r"classes.txt: not UTF-8 text \(byte e4 at byte offset 8\)",
        2,
    )


# ----------------------------------------------------------------------------------------------
# output paths


def test_output_that_is_a_file_or_unwritable(voc, tmp_path, capsys):
    existing = tmp_path / "a-file"
    existing.write_text("")
    _fails(capsys, _train_args(voc, existing), r"--output .*a-file: exists and is not a directory", 2)
    _fails(capsys, _train_args(voc, existing / "run"), r"--output .*a-file/run: cannot write there", 2)
    _fails(
        capsys,
        ["predict", "--checkpoint", "x.pth", str(existing), "--output", str(existing)],
        r"--output .*a-file: exists and is not a directory",
        2,
    )
    _fails(
        capsys,
        ["eval", "--checkpoint", "x.pth", "--output", str(tmp_path)],
        r"--output .*: is a directory, expected a file name",
        2,
    )
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        _fails(
            capsys,
            _train_args(voc, locked),
            r"--output .*locked: cannot write there \(Permission denied\)",
            2,
        )
