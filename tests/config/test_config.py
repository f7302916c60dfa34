import subprocess
import sys
from pathlib import Path

import pytest

from iadet.config import MethodParams, config_diff, load_config, method_names, method_params
from iadet.config.coerce import coerce
from iadet.config.config import parse_override
from iadet.errors import ConfigError
from iadet.modeling.methods.inverted_attention import IAParams


def test_defaults_and_builtin_quick():
    default = load_config()
    quick = load_config("quick")
    assert default.model.backbone == "resnet50_fpn"
    assert quick.model.backbone == "tiny"
    assert quick.method == MethodParams(name="none")
    assert default.train.lr == pytest.approx(0.002)


def test_overrides_are_typed():
    cfg = load_config(
        "quick", ["train.lr=0.01", "train.max_iters=5", "train.lr_steps=[3, 4]", "data.flip=false"]
    )
    assert cfg.train.lr == 0.01 and isinstance(cfg.train.lr, float)
    assert cfg.train.max_iters == 5
    assert cfg.train.lr_steps == [3.0, 4.0]
    assert cfg.data.flip is False


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(ConfigError, match=r"unknown config key 'train.lrr'.*did you mean 'train.lr'"):
        load_config("quick", ["train.lrr=0.1"])


def test_unknown_section():
    with pytest.raises(ConfigError, match="unknown config section 'trian'.*'train'"):
        load_config(None, ["trian.lr=1"])


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match=r"train.lr: expected a number, got 'abc'"):
        load_config("quick", ["train.lr=abc"])
    with pytest.raises(ConfigError, match="train.max_iters: expected an integer"):
        load_config("quick", ["train.max_iters=2.5"])
    with pytest.raises(ConfigError, match="data.flip: expected true/false"):
        load_config("quick", ["data.flip=maybe"])


def test_malformed_override():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("train.lr")
    with pytest.raises(ConfigError, match="section.key"):
        parse_override("lr=3")


def test_method_params_resolved_and_validated():
    cfg = load_config("quick", ["method.name=ia", "method.roi_ratio=0.5", "method.spatial_ratio=1/4"])
    assert isinstance(cfg.method, IAParams)
    assert cfg.method.name == "ia"
    assert cfg.method.roi_ratio == 0.5
    assert cfg.method.spatial_ratio == 0.25
    assert cfg.method.channel_ratio == 0.8  # the paper's default stays
    code = load_config("quick", ["method.name=ia-code"])
    assert code.method.select == "drop" and code.method.orientation == "spatial"
    assert code.method.spatial_ratio == pytest.approx(18 / 49)
    assert list(code.to_dict()["method"])[0] == "name"  # config.yaml: the name first, then the parameters
    with pytest.raises(ConfigError, match="unknown method 'ai' .did you mean 'ia'.*valid methods: .*ia"):
        load_config("quick", ["method.name=ai"])
    with pytest.raises(ConfigError, match="unknown config key 'method.roi_ratoi'.*roi_ratio"):
        load_config("quick", ["method.name=ia", "method.roi_ratoi=0.1"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method.name=ia", "method.strategy=bogus"], "method.strategy: unknown value 'bogus'"),
        (["method.name=ia", "method.roi_ratio=1.5"], r"method.roi_ratio must be in \[0, 1\]"),
        (["method.name=asdn", "method.width=0"], "method.width must be >= 1"),
        (["method.name=astn", "method.objective=nope"], "method.objective: unknown value 'nope'"),
        (["method.name=asdn+astn", "method.blocks=0"], "method.blocks must be at least 1"),
        (["method.name=jitter", "method.rotation=-1"], "method.rotation must be >= 0"),
        (["method.name=ohem", "method.batch_size_per_image=-2"], "method.batch_size_per_image must be >= 0"),
        (["method.name=random-dropout", "method.drop_fraction=2"], "method.drop_fraction must be in"),
    ],
)
def test_every_bad_method_value_fails_when_the_config_is_loaded(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("quick", overrides)


def test_presets_are_parameter_classes_with_other_defaults():
    assert set(method_names()) >= {"none", "ia", "ia-code", "asdn", "fixed-asdn", "astn", "asdn+astn", "ohem"}
    assert method_params({"name": "fixed-asdn"}).joint_update is False
    assert method_params({"name": "fixed-asdn", "joint_update": True}).joint_update is True
    assert method_params({"name": "none"}) == MethodParams()
    # the ASTN does what the paper's ASTN section says (Sec. 4.2.2); the Sec. 3 objective stays a choice
    assert method_params({"name": "astn"}).objective == "background"
    assert method_params({"name": "asdn+astn"}).objective == "background"
    assert method_params({"name": "astn", "objective": "max-loss"}).objective == "max-loss"
    # a stored config of an earlier version (with the retired debugging key) still loads
    assert method_params({"name": "ia", "keep_last": False}) == method_params({"name": "ia"})


def test_config_reaches_the_methods_only_through_the_registry():
    """Loading a config imports no layer above ``config`` except the method modules the registry discovers (and
    what they need): never the engine, the commands or the reports. Without a method name nothing is discovered."""
    code = "import sys, iadet.config; iadet.config.load_config('quick', [{overrides}]); "
    code += "print(sorted({{m.split('.')[1] for m in sys.modules if m.startswith('iadet.')}}))"
    run = lambda overrides: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code.format(overrides=overrides)], capture_output=True, text=True, check=True
    ).stdout.strip()
    layers = set(eval(run("'method.name=asdn+astn'")))  # noqa: S307  (our own printed list)
    assert {"config", "errors", "modeling", "data"} <= layers
    assert not layers & {"engine", "cli", "comparison", "robustness", "visualization", "export", "evaluation"}
    assert set(eval(run(""))) <= {"config", "errors"}  # noqa: S307


def test_yaml_file_with_base(tmp_path: Path):
    (tmp_path / "base.yaml").write_text("_base_: quick\ntrain:\n  lr: 0.05\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain:\n  batch_size: 8\nmethod:\n  name: ia\n")
    cfg = load_config(str(tmp_path / "child.yaml"), ["train.seed=3"])
    assert (cfg.model.backbone, cfg.train.lr, cfg.train.batch_size, cfg.train.seed) == ("tiny", 0.05, 8, 3)
    assert cfg.method.name == "ia"


def test_broken_yaml_names_the_file_and_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+"):
        load_config(str(bad))


def test_missing_config_suggests_builtin():
    with pytest.raises(ConfigError, match="'quik' is neither a built-in name.*did you mean 'quick'"):
        load_config("quik")


def test_round_trip_and_diff():
    cfg = load_config("quick", ["method.name=ia"])
    again = type(cfg).from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()
    other = load_config("quick", ["method.name=ia", "train.lr=0.3"])
    assert config_diff(cfg.to_dict(), other.to_dict()) == ["train.lr"]


def test_coerce_optional_and_lists():
    assert coerce(None, int | None, "k") is None
    assert coerce("null", int | None, "k") is None
    assert coerce("1,2", list[float], "k") == [1.0, 2.0]
    with pytest.raises(ConfigError):
        coerce(True, int, "k")
