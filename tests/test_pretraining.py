"""Pretraining: bit-for-bit reproducible from the seed, loadable through model.backbone_weights, `builtin`, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from iadet import pretraining as pt
from iadet.cli import main
from iadet.config.schema import ModelConfig
from iadet.errors import ConfigError
from iadet.modeling.backbones import TinyBackbone
from iadet.modeling.detector import build_model
from iadet.modeling.weights import load_backbone_weights
from iadet.serialization import load_file

from conftest import dead_owner

SHORT = {"train_images": 128, "val_images": 58, "epochs": 2, "batch_size": 32, "warmup_iters": 2}
ROOT = Path(__file__).resolve().parents[1]


def _short(**changes) -> pt.PretrainConfig:
    return pt.PretrainConfig(**{**SHORT, **changes})


def _quiet(line: str) -> None:
    pass


def test_a_short_schedule_twice_gives_identical_weights(tmp_path: Path):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()  # earlier tests may have left it on
    first, record = pt.pretrain(TinyBackbone(), _short(), tmp_path / "a", log=_quiet)
    torch.manual_seed(7)  # the caller's RNG state and the trunk's initial values do not matter
    second, again = pt.pretrain(TinyBackbone(), _short(), tmp_path / "b", log=_quiet)
    assert first.keys() == TinyBackbone().state_dict().keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert record["weights_sha256"] == again["weights_sha256"] == pt.weights_digest(first)
    assert (tmp_path / "a" / "backbone.pth").read_bytes() == (tmp_path / "b" / "backbone.pth").read_bytes()
    other, _ = pt.pretrain(TinyBackbone(), _short(seed=1), None, log=_quiet)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    # the run leaves the process as it found it
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    torch.manual_seed(123)
    assert torch.equal(torch.get_rng_state(), before)


def test_the_record(tmp_path: Path):
    _, record = pt.pretrain(TinyBackbone(), _short(), tmp_path, log=_quiet)
    written = json.loads((tmp_path / "pretrain.json").read_text())
    assert written == json.loads(json.dumps(record))
    assert written["fingerprint"] == pt.fingerprint(_short())
    assert written["task"]["classes"] >= 50 and written["config"]["seed"] == 0
    assert [e["epoch"] for e in written["epochs"]] == [1, 2]
    assert all(0.0 <= e["val_top1"] <= 1.0 for e in written["epochs"])
    assert written["val_top1"] == written["epochs"][-1]["val_top1"]
    assert written["iterations"] == 2 * (128 // 32) and written["seconds"] > 0
    state = load_file(tmp_path / "backbone.pth")  # weights_only
    assert pt.weights_digest(state) == written["weights_sha256"]


def test_the_fingerprint_changes_with_every_setting():
    base = pt.fingerprint(pt.PretrainConfig())
    assert base == pt.fingerprint(pt.PretrainConfig())
    for change in ({"seed": 1}, {"epochs": 9}, {"lr": 0.07}, {"threads": 1}, {"train_images": 100}):
        assert pt.fingerprint(pt.PretrainConfig(**change)) != base, change


def test_weights_load_into_the_tiny_detector_through_backbone_weights(tmp_path: Path):
    state, _ = pt.pretrain(TinyBackbone(), _short(epochs=1), tmp_path, log=_quiet)
    cfg = ModelConfig(
        backbone="tiny", backbone_weights=str(tmp_path / "backbone.pth"), min_size=64, max_size=96
    )
    model = build_model(cfg, num_classes=3)
    loaded = model.backbone.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    model.eval()
    with torch.no_grad():
        model([torch.rand(3, 64, 80)])  # runs


def test_builtin_is_made_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    real = pt.PretrainConfig
    monkeypatch.setattr(
        pt, "PretrainConfig", lambda backbone: real(backbone=backbone, **{**SHORT, "epochs": 1})
    )
    monkeypatch.setattr(pt, "BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setenv("IADET_CACHE", str(tmp_path / "cache"))
    cfg = ModelConfig(backbone="tiny", backbone_weights="builtin", min_size=64, max_size=96)
    model = build_model(cfg, num_classes=3)
    err = capsys.readouterr().err
    assert "making the built-in pretrained 'tiny' backbone" in err
    made = list((tmp_path / "cache" / "pretrain").glob("tiny-seed0-*/backbone.pth"))
    assert len(made) == 1 and made[0].parent.name.endswith(pt.fingerprint(pt.PretrainConfig("tiny")))
    state = load_file(made[0])
    assert all(torch.equal(model.backbone.state_dict()[k], state[k]) for k in state)
    stamp = made[0].stat().st_mtime_ns
    build_model(cfg, num_classes=3)
    assert "making" not in capsys.readouterr().err and made[0].stat().st_mtime_ns == stamp
    # a damaged cache (here: other weights than its record's) is made again, never loaded
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, made[0])
    remade = build_model(cfg, num_classes=3)
    err = capsys.readouterr().err
    assert "damaged or from another version: making it again" in err and "making the built-in" in err
    assert all(torch.equal(remade.backbone.state_dict()[k], state[k]) for k in state)
    # a lock its process left behind (a kill -9) is taken over at once
    lock = made[0].parent.parent / f".{made[0].parent.name}.lock"
    lock.write_text(dead_owner())
    made[0].write_bytes(b"not a checkpoint")
    build_model(cfg, num_classes=3)
    assert not lock.exists() and "making it again" in capsys.readouterr().err
    # a bundled file of the same fingerprint wins over the cache
    (tmp_path / "bundled").mkdir()
    bundled = tmp_path / "bundled" / f"tiny-{pt.fingerprint(pt.PretrainConfig('tiny'))}.pth"
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, bundled)
    assert pt.builtin_weights(TinyBackbone()) == bundled


def test_builtin_exists_for_tiny_only():
    with pytest.raises(ConfigError, match="tiny backbone only"):
        load_backbone_weights(nn.Conv2d(3, 8, 3), "builtin")


def test_the_bundled_weights_are_the_committed_record():
    """A bundled file must be the output of the committed run (benchmarks/results/pretrain/pretrain.json)."""
    cfg = pt.PretrainConfig()
    bundled = pt.BUNDLED_DIR / f"{cfg.backbone}-{pt.fingerprint(cfg)}.pth"
    if not bundled.is_file():
        pytest.skip("no bundled weights for the current fingerprint")
    record = json.loads((ROOT / "benchmarks" / "results" / "pretrain" / "pretrain.json").read_text())
    assert record["fingerprint"] == pt.fingerprint(cfg)
    assert pt.weights_digest(load_file(bundled)) == record["weights_sha256"]
    assert bundled.stat().st_size < 2_000_000


def test_freezing_follows_the_papers_rule():
    for stages, frozen_blocks in ((3, 2), (5, 0), (0, 5), (1, 4)):
        trunk = TinyBackbone()
        pt.freeze_tiny(trunk, stages)
        convs = [m for m in trunk if isinstance(m, nn.Conv2d)]
        assert [not c.weight.requires_grad for c in convs] == [i < frozen_blocks for i in range(5)], stages
    with pytest.raises(ConfigError):
        pt.freeze_tiny(TinyBackbone(), 6)


def test_iadet_pretrain_on_a_tiny_schedule(tmp_path: Path, capsys):
    out = tmp_path / "pre"
    args = ["pretrain", "--backbone", "tiny", "--output", str(out), "--train-images", "64",
            "--val-images", "58", "--epochs", "1", "--batch-size", "32", "--warmup-iters", "1"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "val top-1" in text and "model.backbone_weights=" in text
    record = json.loads((out / "pretrain.json").read_text())
    assert record["config"]["train_images"] == 64 and record["config"]["backbone"] == "tiny"
    assert set(load_file(out / "backbone.pth")) == set(TinyBackbone().state_dict())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backbone", "vgg16"], "cannot pretrain backbone 'vgg16'"),
        (["--seed", "-1"], "seed must be >= 0"),
        (["--batch-size", "999999"], "exceeds train_images"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, capsys, extra: list[str], message: str):
    assert main(["pretrain", "--output", str(tmp_path / "x"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("iadet: error:") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_an_output_that_is_a_file_is_refused(tmp_path: Path, capsys):
    (tmp_path / "f").write_text("")
    assert main(["pretrain", "--output", str(tmp_path / "f"), "--epochs", "1"]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_the_tiny_detector_freezes_the_first_two_pretrained_blocks_by_default():
    from iadet.config import load_config
    from iadet.modeling.detector import build_model

    def frozen(*overrides: str) -> set[str]:
        model = build_model(load_config("quick", list(overrides)).model, 3)
        return {n for n, p in model.backbone.named_parameters() if not p.requires_grad}

    assert frozen() == set()  # from random initialisation every block trains
    two_blocks = frozen("model.backbone_weights=builtin")
    assert (
        two_blocks and frozen("model.backbone_weights=builtin", "model.trainable_backbone_layers=5") == set()
    )
    assert two_blocks < frozen("model.backbone_weights=builtin", "model.trainable_backbone_layers=1")
