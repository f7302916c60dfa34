"""A-Fast-RCNN methods and baselines inside the real detector and the real training loop.

Gradient isolation on the tiny detector, AMP (CPU bfloat16), images without objects and batch
size 1, checkpoints (the model's keys are the baseline's; the adversary and its optimiser are
separate), and a resume in the middle of each stage that is bit-identical to a straight run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from iadet.cli import main
from iadet.config import load_config, method_params
from iadet.config.schema import ModelConfig
from iadet.engine.checkpoint import check_plain
from iadet.engine.determinism import seed_everything
from iadet.engine.training_run import train
from iadet.modeling.attach import attach
from iadet.modeling.detector import build_model
from iadet.modeling.methods import adversary_parameters, build_method

from conftest import make_voc, read_jsonl, sigterm_at, tiny_overrides, write_voc_xml

ADVERSARIAL = ["asdn", "fixed-asdn", "astn", "asdn+astn"]
BASELINES = ["random-dropout", "hard-dropout", "jitter", "ohem", "dropblock"]
STAGES = ("method.warmup_iters=2", "method.pretrain_iters=2")  # (a) 0-1, (b) 2-3, (c) 4-
TINY = ModelConfig(backbone="tiny", min_size=64, max_size=96, box_batch_size_per_image=32)


def _stage_overrides(method: str) -> tuple[str, ...]:
    if method in ("asdn", "fixed-asdn", "asdn+astn"):
        return STAGES
    if method == "astn":
        return ("method.warmup_iters=2",)
    return ()


def _config(root: Path, iters: int, *extra: str):
    overrides = tiny_overrides(root, iters) + ["train.deterministic=true", "train.eval_at_end=false", *extra]
    return load_config("quick", overrides)


# ----------------------------------------------------------------------------------------------
# inside the detector


def _joint_method(name: str, **params):
    """``name`` in its joint stage on the tiny detector (every image adversarial)."""
    if name != "astn":
        params = {"pretrain_iters": 0, **params}
    method = build_method(method_params({"name": name, "warmup_iters": 0, "image_share": 1.0, **params}))
    model = build_model(TINY, 3, method, max_iters=10)
    return method, model.train()


def _captured_adversary_losses(method) -> list[dict]:
    """The losses each step hands to the method's own optimiser, still with their graphs."""
    captured = []
    step = method.step_adversary

    def capture(losses):
        captured.append(dict(losses))
        step(losses)

    method.step_adversary = capture
    return captured


def _inputs(seed: int = 0, empty_second: bool = True):
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, 64, 80, generator=g) for _ in range(2)]
    targets = [
        {
            "boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [40.0, 10.0, 70.0, 50.0]]),
            "labels": torch.tensor([1, 2]),
        },
        {"boxes": torch.tensor([[10.0, 10.0, 50.0, 40.0]]), "labels": torch.tensor([2])},
    ]
    if empty_second:
        targets[1] = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    return images, targets


@pytest.mark.parametrize("name", ["asdn", "astn", "asdn+astn"])
def test_gradient_isolation_inside_the_detector(name):
    torch.manual_seed(0)
    # with drop_threshold -1 every sampled mask teaches the ASDN
    method, model = _joint_method(name, **({} if name == "astn" else {"drop_threshold": -1.0}))
    images, targets = _inputs(empty_second=False)
    adversary = adversary_parameters(method)
    detector = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in adversary}.isdisjoint(id(p) for p in detector)
    upstream = [p for n, p in model.named_parameters() if not n.startswith("roi_heads.")]
    checked = []
    step = method.step_adversary

    def check_then_step(adversary_losses):
        assert set(adversary_losses) == {"asdn": {"loss_asdn"}, "astn": {"loss_astn"}}.get(
            name, {"loss_asdn", "loss_astn"}
        )
        # the adversaries' losses reach no parameter before the RoI features (backbone, RPN) ...
        adversary_loss = sum(adversary_losses.values())
        assert all(
            g is None
            for g in torch.autograd.grad(adversary_loss, upstream, retain_graph=True, allow_unused=True)
        )
        grads = torch.autograd.grad(adversary_loss, adversary, retain_graph=True, allow_unused=True)
        assert any(g is not None and bool(g.ne(0).any()) for g in grads)
        checked.append(True)
        step(adversary_losses)

    method.step_adversary = check_then_step
    losses = model(images, targets)
    assert checked and set(losses) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    # ... and the detector's loss reaches no adversary parameter
    detector_loss = sum(losses.values())
    assert all(
        g is None for g in torch.autograd.grad(detector_loss, adversary, retain_graph=True, allow_unused=True)
    )


def test_the_adversary_optimiser_follows_caffe_for_the_asdn_and_spares_the_astn_decay():
    method, _ = _joint_method("asdn+astn", lr=0.01, astn_lr=0.05, weight_decay=0.001)
    groups = method.make_adversary_optimizer().param_groups
    asdn = {id(p) for p in method.asdn.parameters()}
    astn = {id(p) for p in method.astn.parameters()}
    by_kind = {}
    for g in groups:
        ids = {id(p) for p in g["params"]}
        kind = (
            "astn"
            if ids <= astn
            else "asdn-bias"
            if all(p.dim() == 1 for p in g["params"])
            else "asdn-weight"
        )
        assert ids <= asdn or ids <= astn
        by_kind[kind] = (g["lr"], g["weight_decay"], g["momentum"])
    assert by_kind == {
        "asdn-weight": (0.01, 0.001, 0.9),
        "asdn-bias": (0.02, 0.0, 0.9),
        "astn": (0.05, 0.0, 0.9),
    }
    assert sum(len(g["params"]) for g in groups) == len(adversary_parameters(method))


@pytest.mark.parametrize("name", ADVERSARIAL + BASELINES)
def test_methods_run_under_cpu_autocast_with_an_image_without_objects(name):
    torch.manual_seed(0)
    method, model = _joint_method(name) if name in ADVERSARIAL else (None, None)
    if method is None:
        method = build_method(method_params({"name": name}))
        model = build_model(TINY, 3, method, max_iters=10).train()
    captured = _captured_adversary_losses(method)
    images, targets = _inputs(empty_second=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(images, targets)
    assert all(bool(torch.isfinite(v)) for v in losses.values())
    assert bool(captured) == (name in ("asdn", "astn", "asdn+astn"))  # a fixed ASDN no longer learns
    for loss in (captured[0] if captured else {}).values():
        assert loss.dtype == torch.float32 and bool(torch.isfinite(loss)) and loss.requires_grad


# ----------------------------------------------------------------------------------------------
# the training loop


@pytest.mark.slow
@pytest.mark.parametrize("name", ADVERSARIAL + BASELINES)
def test_each_method_trains_through_the_cli(shared_voc: Path, tmp_path: Path, name: str):
    out = tmp_path / name
    args = ["train", "--config", "quick", "--output", str(out), "--quiet", "--set", f"method.name={name}"]
    for o in [*tiny_overrides(shared_voc, 6), "train.eval_at_end=false", *_stage_overrides(name)]:
        args += ["--set", o]
    assert main(args) == 0
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "train"]
    assert [r["iter"] for r in rows] == list(range(1, 7))

    checkpoint = torch.load(out / "checkpoint.pth", weights_only=True)
    check_plain(checkpoint)
    baseline_keys = list(build_model(load_config("quick", ["model.backbone=tiny"]).model, 3).state_dict())
    assert list(checkpoint["model"]) == baseline_keys  # exactly the baseline's keys
    assert list(torch.load(out / "model_final.pth", weights_only=True)) == baseline_keys
    adversary = checkpoint["method"]
    assert adversary["name"] == name
    if name in ADVERSARIAL:
        stages = [r["adv_stage"] for r in rows]
        assert stages == ([0, 0, 1, 1, 2, 2] if name != "astn" else [0, 0, 2, 2, 2, 2])
        prefixes = {n.split(".")[0] for n in adversary["state"]} - {"_extra_state"}
        assert prefixes == {"asdn": {"asdn"}, "fixed-asdn": {"asdn"}, "astn": {"astn"}}.get(
            name, {"asdn", "astn"}
        )
        training = adversary["state"]["_extra_state"]
        assert training["optimizer"]["state"]  # momentum buffers saved
        assert training["bounds"] == ([2, 4] if name != "astn" else [2, 2])
        assert training["iteration"] == 6 and training["name"] == name
        assert all(not k.startswith(("asdn", "astn")) for k in checkpoint["model"])
    else:
        assert set(adversary["state"]) == {"_extra_state"}
        assert adversary["state"]["_extra_state"]["optimizer"] == {}
    if name in ("asdn", "asdn+astn"):
        assert all("loss_asdn" in r for r in rows[2:])
    if name in ("astn", "asdn+astn"):
        assert all("loss_astn" in r and "astn_abs_angle" in r for r in rows[4:])
    if name == "ohem":
        assert all(r["ohem_rois"] <= 2 * 32 for r in rows)


def _final(out: Path) -> tuple[dict, dict]:
    """The final detector weights and the adversary's parameters (its training state left out)."""
    model = torch.load(out / "model_final.pth", weights_only=True)
    adversary = torch.load(out / "checkpoint.pth", weights_only=True)["method"]["state"]
    return model, {k: v for k, v in adversary.items() if k != "_extra_state"}


RESUMES = [
    ("asdn", (1, 3, 5)),  # stopped in (a), in (b), in (c)
    ("asdn+astn", (5,)),
    ("fixed-asdn", (5,)),
    ("astn", (4,)),
    ("random-dropout", (3,)),
    ("hard-dropout", (3,)),
    ("jitter", (3,)),
    ("ohem", (3,)),
    ("dropblock", (3,)),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, stops", RESUMES)
def test_interrupted_in_each_stage_then_resumed_is_bit_identical(
    shared_voc: Path, tmp_path: Path, monkeypatch, capsys, name: str, stops: tuple[int, ...]
):
    extra = (f"method.name={name}", "train.checkpoint_every=100", *_stage_overrides(name))
    straight = train(_config(shared_voc, 7, *extra), tmp_path / "straight", quiet=True)
    assert straight.iterations == 7
    model_a, adversary_a = _final(tmp_path / "straight")
    for stop in stops:
        out = tmp_path / f"stopped-at-{stop}"
        sigterm_at(monkeypatch, stop)
        first = train(_config(shared_voc, 7, *extra), out, quiet=True)
        assert first.interrupted and first.iterations == stop
        monkeypatch.undo()
        assert train(_config(shared_voc, 7, *extra), out, resume=True, quiet=True).iterations == 7
        model_b, adversary_b = _final(out)
        assert all(torch.equal(model_a[k], model_b[k]) for k in model_a), stop
        assert adversary_a.keys() == adversary_b.keys()
        assert all(torch.equal(adversary_a[k], adversary_b[k]) for k in adversary_a), stop
    capsys.readouterr()


def _initial_state(config) -> tuple[dict, dict]:
    """The detector and adversary as the trainer builds them (same seed, same order)."""
    seed_everything(config.train.seed)
    model = build_model(config.model, 3)
    method = attach(model, config.method, max_iters=config.train.max_iters)
    return model.state_dict(), {k: v for k, v in method.state_dict().items() if k != "_extra_state"}


@pytest.mark.slow
def test_asdn_pretraining_freezes_the_detector_and_the_idle_astn(shared_voc: Path, tmp_path: Path):
    config = _config(
        shared_voc, 3, "method.name=asdn+astn", "method.warmup_iters=0", "method.pretrain_iters=3"
    )
    model0, adversary0 = _initial_state(config)
    train(config, tmp_path / "run", quiet=True)
    model1, adversary1 = _final(tmp_path / "run")
    assert all(torch.equal(model0[k], model1[k]) for k in model0)  # the detector did not move
    for k in adversary0:
        changed = not torch.equal(adversary0[k], adversary1[k])
        assert changed == k.startswith("asdn"), k  # the ASDN learned; the ASTN waits for stage (c)


@pytest.mark.slow
def test_the_adversarys_update_leaves_the_detector_and_vice_versa(shared_voc: Path, tmp_path: Path):
    # one joint iteration: the ASTN's loss weight changes the ASTN, never the detector
    runs = {}
    for weight in (0.0, 1.0):
        out = tmp_path / f"astn-{weight}"
        extra = (
            "method.name=astn",
            "method.warmup_iters=1",
            f"method.astn_loss_weight={weight}",
            "method.lr=0.1",
        )
        train(_config(shared_voc, 2, *extra), out, quiet=True)
        runs[weight] = _final(out)
    (model_0, astn_0), (model_1, astn_1) = runs[0.0], runs[1.0]
    assert all(torch.equal(model_0[k], model_1[k]) for k in model_0)
    assert torch.equal(astn_0["astn.fc3.weight"], torch.zeros_like(astn_0["astn.fc3.weight"]))
    assert not torch.equal(astn_0["astn.fc3.weight"], astn_1["astn.fc3.weight"])

    # a fixed ASDN stays exactly as pre-trained through joint training
    common = ("method.name=fixed-asdn", "method.warmup_iters=1", "method.pretrain_iters=1")
    train(_config(shared_voc, 2, *common), tmp_path / "pretrained", quiet=True)
    train(_config(shared_voc, 5, *common), tmp_path / "joint", quiet=True)
    (detector_2, asdn_2), (detector_5, asdn_5) = _final(tmp_path / "pretrained"), _final(tmp_path / "joint")
    assert all(torch.equal(asdn_2[k], asdn_5[k]) for k in asdn_2)
    assert not all(torch.equal(detector_2[k], detector_5[k]) for k in detector_2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["asdn+astn", "hard-dropout", "ohem", "jitter"])
def test_batch_size_one_and_images_without_objects(tmp_path: Path, name: str):
    root = make_voc(tmp_path / "voc", n_train=6, n_test=2)
    for i in (0, 2, 3):  # half the training images hold no object
        image_id = f"{i:06d}"
        write_voc_xml(root / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", 96, 72, [])
    extra = (
        f"method.name={name}",
        "train.batch_size=1",
        "train.checkpoint_every=100",
        *_stage_overrides(name),
    )
    result = train(_config(root, 8, *extra), tmp_path / "run", quiet=True)
    assert result.iterations == 8
    rows = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["type"] == "train"]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    if name == "asdn+astn":
        # batch size 1: every other image is adversarial (iterations 5, 7 of the joint stage 4-7)
        assert [r["adv_stage"] for r in rows] == [0, 0, 1, 1, 2, 2, 2, 2]
        assert all(r["adv_rois"] == 0 for r in rows[4::2])


@pytest.mark.slow
def test_ddp_ranks_stay_in_step_when_only_one_has_adversarial_rois(tmp_path: Path):
    """2 gloo processes, one image each: with image_share 1/2 only rank 1's image is adversarial,
    and half the images hold no object; every rank must still average the same adversary losses."""
    import subprocess
    import sys

    root = make_voc(tmp_path / "voc", n_train=8, n_test=2)
    for i in (1, 2, 5):
        write_voc_xml(root / "Annotations" / f"{i:06d}.xml", f"{i:06d}.jpg", 96, 72, [])
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "iadet"]
    cmd += ["train", "--config", "quick", "--output", str(out), "--quiet"]
    for o in [*tiny_overrides(root, 6), "train.eval_at_end=false", "method.name=asdn+astn", *STAGES]:
        cmd += ["--set", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IADET_DIST_TIMEOUT": "60"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "train"]
    assert [r["adv_stage"] for r in rows] == [0, 0, 1, 1, 2, 2]
    assert all("loss_asdn" in r and "loss_astn" in r for r in rows[4:])
    adversary = torch.load(out / "checkpoint.pth", weights_only=True)["method"]
    assert {k.split(".")[0] for k in adversary["state"]} == {"asdn", "astn", "_extra_state"}
    # the method's statistics are over both ranks, not rank 0's alone: only rank 1 has adversarial
    # images, so rank 0 alone would never log the ASTN's angle
    assert all("astn_abs_angle" in r and r["adv_rois"] > 0 for r in rows[4:]), rows[4:]
