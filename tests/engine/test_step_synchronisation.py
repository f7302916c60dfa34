"""The per-step path of ``iadet train`` waits for the device no more often than a plain torchvision step.

Every ``.item()``, ``.cpu()``, ``.tolist()`` and Python conversion of a tensor (``bool``, ``float``,
``int``) makes the host wait for the device on a GPU. Counted on the CPU during one training step
with logging, checkpoints and evaluation off (the data loading left out), for ``none`` and ``ia``,
against the same model's plain loop: forward, ``sum`` of the loss dict, backward, ``optimizer.step()``.
What torchvision's own detector code does is in both; iadet must add nothing.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import pytest
import torch

from iadet.config import load_config
from iadet.engine import train_loop
from iadet.engine.training_run import train
from iadet.modeling.detector import build_model

from conftest import tiny_overrides

SYNCS = ("item", "cpu", "tolist", "__bool__", "__float__", "__int__")


class SyncCounter:
    """Counts the calls of :data:`SYNCS` on tensors while ``active``."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.active = False

    @contextlib.contextmanager
    def patched(self):
        originals = {name: getattr(torch.Tensor, name) for name in SYNCS}

        def counting(name, original):
            def call(tensor, *args, **kwargs):
                if self.active:
                    self.calls[name] += 1
                return original(tensor, *args, **kwargs)

            return call

        for name, original in originals.items():
            setattr(torch.Tensor, name, counting(name, original))
        try:
            yield self
        finally:
            for name, original in originals.items():
                setattr(torch.Tensor, name, original)


def _iadet_step_syncs(root: Path, out: Path, method: str, monkeypatch) -> tuple[Counter, list]:
    """The syncs of iadet's third training step, and that step's batch."""
    counter, seen = SyncCounter(), []
    run_step = train_loop.Trainer.run_step

    def counted_step(self):
        if self.iter != 2:
            return run_step(self)
        data = self.data

        def fetch():  # the data loading is not the step's
            batch = next(data)
            seen.append(batch)
            counter.active = True
            return batch

        self.data = iter(fetch, None)
        try:
            return run_step(self)
        finally:
            counter.active = False
            self.data = data

    monkeypatch.setattr(train_loop.Trainer, "run_step", counted_step)
    overrides = tiny_overrides(root, 4) + [
        f"method.name={method}",
        "train.log_every=1000",
        "train.checkpoint_every=1000",
        "train.eval_at_end=false",
        "train.warmup_iters=0",
    ]
    with counter.patched():
        train(load_config("quick", overrides), out, quiet=True)
    return counter.calls, seen


def _plain_step_syncs(root: Path, batch) -> Counter:
    config = load_config("quick", tiny_overrides(root, 4))
    model = build_model(config.model, 3).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    _, _, images, targets = batch
    counter = SyncCounter()
    with counter.patched():
        counter.active = True
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        counter.active = False
    return counter.calls


@pytest.mark.parametrize("method", ["none", "ia"])
def test_a_step_waits_for_the_device_no_more_than_torchvisions_own(
    shared_voc: Path, tmp_path: Path, monkeypatch, method: str
):
    ours, seen = _iadet_step_syncs(shared_voc, tmp_path / method, method, monkeypatch)
    plain = _plain_step_syncs(shared_voc, seen[0])
    assert sum(plain.values()) > 0  # the counter sees torchvision's own
    extra = {k: ours[k] - plain[k] for k in SYNCS if ours[k] > plain[k]}
    assert not extra, (
        f"iadet adds host-device synchronisations to a step: {extra} (torchvision's: {dict(plain)})"
    )
