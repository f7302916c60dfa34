"""Checkpoints written before iadet 0.2 resume exactly.

Before 0.2 the training method's section of ``checkpoint.pth`` was called ``adversary`` and held the
adversary's parameters (``state``), its optimiser (``optimizer``) and A-Fast-RCNN's stage and
boundaries (``extra``) side by side; 0.2 calls it ``method`` and keeps all of that in the method's own
``state_dict()``. ``data/adversary_section_v0.1.pt`` is that old section, as iadet at commit 36898d4
saved it after 3 steps of the run below (the detector's part of such a checkpoint is unchanged, and
25 MB, so it is not committed: the test trains the same 3 steps and puts the old section in).
"""

from __future__ import annotations

from pathlib import Path

import torch

from iadet.config import load_config
from iadet.engine.checkpoint import load_file
from iadet.engine.training_run import train
from iadet.serialization import save_atomic

from conftest import make_voc, tiny_overrides

OLD_SECTION = Path(__file__).parent / "data" / "adversary_section_v0.1.pt"
RUN = [
    "method.name=asdn",
    "method.width=4",  # a small ASDN: the committed section is 48 kB
    "method.warmup_iters=1",
    "method.pretrain_iters=1",
    "train.deterministic=true",
    "train.eval_at_end=false",
    "train.checkpoint_every=100",
]


def _config(root: Path, iters: int):
    return load_config("quick", tiny_overrides(root, iters) + RUN)


def test_an_iadet_0_1_checkpoint_resumes_its_adversary_exactly(tmp_path: Path):
    root = make_voc(tmp_path / "voc", n_train=8, n_test=2)
    train(_config(root, 5), tmp_path / "straight", quiet=True)

    out = tmp_path / "old"
    train(_config(root, 3), out, quiet=True)
    checkpoint = load_file(out / "checkpoint.pth")
    old = torch.load(OLD_SECTION, weights_only=True)
    assert set(old) == {"name", "state", "optimizer", "extra"} and old["extra"]["stage"] == "joint"
    # the same 3 steps then: the same ASDN as this code's
    ours = checkpoint.pop("method")["state"]
    assert all(torch.equal(v, ours[k]) for k, v in old["state"].items())
    checkpoint["adversary"] = old  # the checkpoint as iadet 0.1 wrote it
    save_atomic(checkpoint, out / "checkpoint.pth")

    assert train(_config(root, 5), out, resume=True, force=True, quiet=True).iterations == 5
    straight = load_file(tmp_path / "straight" / "checkpoint.pth")
    resumed = load_file(out / "checkpoint.pth")
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    a, b = straight["method"]["state"], resumed["method"]["state"]
    assert all(torch.equal(a[k], b[k]) for k in a if k != "_extra_state")
    assert b["_extra_state"]["iteration"] == 5 and b["_extra_state"]["stage"] == "joint"
    assert a["_extra_state"]["optimizer"]["state"].keys() == b["_extra_state"]["optimizer"]["state"].keys()
