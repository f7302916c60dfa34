"""``iadet compare --seeds``: a count or a list of seeds."""

from __future__ import annotations

import argparse

import pytest

from iadet.cli.compare import seed_list
from iadet.comparison.compare import CompareSpec, run_compare
from iadet.errors import ConfigError


def test_a_count_or_a_list():
    assert seed_list("5") == 5
    assert seed_list("0,1,2,5") == [0, 1, 2, 5]
    assert seed_list("6,") == [6]  # one seed; "6" is a count
    for bad in ("0", "-1", "a,b", "1,-2", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_list(bad)


def test_bad_seed_lists_are_refused_before_any_work(tmp_path):
    for seeds in ([], [-1], 0):
        with pytest.raises(ConfigError, match="--seeds"):
            run_compare(CompareSpec(methods=["none"], seeds=seeds, output=tmp_path / "out", quiet=True))
    assert not (tmp_path / "out").exists()


def test_the_finetune_preset_trains_on_few_images_of_the_quick_data_from_pretrained_weights(monkeypatch):
    from iadet.cli import compare as compare_cli
    from iadet.config import load_config

    cfg = load_config("finetune")
    assert (cfg.data.preset, cfg.data.train_split, cfg.model.backbone_weights) == ("quick", "few", "builtin")
    assert cfg.train.max_iters == 1500 and cfg.train.lr_steps == [1125]

    class Stop(Exception):
        pass

    seen = {}

    def stub(spec):
        seen["spec"] = spec
        raise Stop

    monkeypatch.setattr("iadet.comparison.compare.run_compare", stub)
    parser = argparse.ArgumentParser()
    compare_cli.register(parser.add_subparsers())
    args = parser.parse_args(["compare", "--preset", "finetune", "--methods", "none", "--output", "/tmp/x"])
    with pytest.raises(Stop):
        args.func(args)
    spec = seen["spec"]
    assert spec.config == "finetune" and "data.preset=quick" in spec.overrides
    assert spec.primary == "AP"  # the protocol's declared primary metric, COCO AP (VOC07 saturates)
    for argv, primary in (
        (["--preset", "quick"], "voc07"),
        (["--preset", "finetune", "--primary", "AP75"], "AP75"),
    ):
        args = parser.parse_args(["compare", *argv, "--methods", "none", "--output", "/tmp/x"])
        with pytest.raises(Stop):
            args.func(args)
        assert seen["spec"].primary == primary


def test_compare_passes_the_data_generators_seed_to_the_data_and_every_run(monkeypatch, tmp_path):
    """``--set data.synth_seed=K`` with compare: the built-in data of seed K, and every run's config says so."""
    from iadet.cli import compare as compare_cli

    class Stop(Exception):
        pass

    seen: dict[str, list[int]] = {"data": [], "runs": []}

    def data_root(cfg):
        seen["data"].append(cfg.synth_seed)
        return tmp_path

    def train(spec, cfg, run_dir, splits):
        seen["runs"].append((cfg.data.synth_seed, cfg.train.seed))
        raise Stop

    monkeypatch.setattr("iadet.comparison.compare.data_root", data_root)
    monkeypatch.setattr("iadet.comparison.compare._train_or_reuse", train)
    parser = argparse.ArgumentParser()
    compare_cli.register(parser.add_subparsers())
    args = parser.parse_args(["compare", "--preset", "finetune", "--methods", "none", "--seeds", "4,2",
                              "--set", "data.synth_seed=3", "--output", str(tmp_path / "out")])  # fmt: skip
    with pytest.raises(Stop):
        args.func(args)
    assert seen == {"data": [3], "runs": [(3, 4)]}
