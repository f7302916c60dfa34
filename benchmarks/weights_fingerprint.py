"""Fingerprint of what training computes: a fixed-seed, deterministic CPU run of every method on a
hand-made toy VOC set, summarised by SHA-256 digests of the final detector weights, the adversary's
state and the training metrics.

A refactoring of the training path that changes none of these digests changed nothing that is
computed. Run it before and after and compare::

    python benchmarks/weights_fingerprint.py --output before.json
    ... change the code ...
    python benchmarks/weights_fingerprint.py --compare before.json

The committed ``benchmarks/results/weights_fingerprint.json`` is the reference of the current code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from iadet.config import load_config  # noqa: E402
from iadet.engine.training_run import train  # noqa: E402

from conftest import make_voc, tiny_overrides  # noqa: E402

# method -> extra overrides. The ASTN objective is pinned so that the check compares the same
# computation whatever the preset's default is; IA records its attention evolution too.
METHODS: dict[str, list[str]] = {
    "none": [],
    "ia": ["method.save_attention_every=4"],
    "ia-code": [],
    "asdn+astn": ["method.objective=max-loss", "method.astn_lr=0.05"],
    "asdn": [],
    "fixed-asdn": [],
    "astn": ["method.objective=max-loss"],
    "random-dropout": [],
    "hard-dropout": [],
    "jitter": [],
    "ohem": [],
    "dropblock": ["method.ramp=constant"],
    "random-erasing": [],
    "hide-and-seek": [],
    "cutout": [],
    "gridmask": [],
}


def _digest(obj) -> str:
    h = hashlib.sha256()

    def feed(x) -> None:
        if isinstance(x, torch.Tensor):
            h.update(str(x.dtype).encode())
            h.update(str(tuple(x.shape)).encode())
            h.update(x.detach().contiguous().cpu().numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                h.update(str(k).encode())
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            for v in x:
                feed(v)
        else:
            h.update(repr(x).encode())

    feed(obj)
    return h.hexdigest()[:16]


def fingerprint(method: str, extra: list[str], root: Path, out: Path, iters: int) -> dict[str, str]:
    overrides = tiny_overrides(root, iters) + [
        "train.deterministic=true",
        "train.eval_at_end=false",
        "train.checkpoint_every=1000",
        "train.log_every=1",
        f"method.name={method}",
        *extra,
    ]
    config = load_config("quick", overrides)
    torch.set_num_threads(1)
    train(config, out, quiet=True)
    final = torch.load(out / "model_final.pth", weights_only=True)
    checkpoint = torch.load(out / "checkpoint.pth", weights_only=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [{k: v for k, v in r.items() if k not in ("time", "data_time")} for r in rows]
    adversary = checkpoint.get("method") or checkpoint.get("adversary") or {}
    state = dict(adversary.get("state", {}))
    # the method's training state (clock, optimiser, stage) rides in its state_dict's _extra_state;
    # the digests keep the layout they had before (parameters; stage boundaries with the hooks' extra)
    training = state.pop("_extra_state", {})
    extra = {k: training[k] for k in STAGE_KEYS if k in training} | adversary.get("extra", {})
    return {
        "weights": _digest(final),
        "adversary": _digest(state),
        "extra": _digest(extra),
        "metrics": _digest(losses),
    }


STAGE_KEYS = ("stage", "bounds", "schedule")
"""The keys of A-Fast-RCNN's training state that the ``extra`` digest covers."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--iters", type=int, default=24)
    parser.add_argument("--output", type=Path, help="write the digests here (JSON)")
    parser.add_argument("--compare", type=Path, help="compare with digests written earlier")
    args = parser.parse_args()
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_voc(Path(tmp) / "voc", n_train=16, n_test=4)
        for method in args.methods.split(","):
            results[method] = fingerprint(
                method, METHODS.get(method, []), root, Path(tmp) / method, args.iters
            )
            print(method, json.dumps(results[method]), flush=True)
    if args.output:
        args.output.write_text(json.dumps({"iters": args.iters, "runs": results}, indent=2) + "\n")
    if args.compare:
        reference = json.loads(args.compare.read_text())["runs"]
        changed = [
            f"{m}.{k}"
            for m in results
            if m in reference
            for k in results[m]
            if results[m][k] != reference[m][k]
        ]
        print("identical" if not changed else "CHANGED: " + ", ".join(changed))
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
