"""Training step-time overhead of each method versus the baseline (``none``).

Trains short runs of every method in alternation (round-robin, so drift in machine load
hits all methods alike) on the same built-in data, reads each iteration's ``time`` from
the runs' ``metrics.jsonl``, drops the first iterations of each run (warm-up), and prints
the median seconds per iteration and its ratio to ``none``::

    python benchmarks/train_overhead.py                       # tiny and resnet50_fpn at 320 px
    python benchmarks/train_overhead.py --backbones tiny --methods none,ia,ia-code --rounds 5

The IA paper reports 1.05x (VGG16) and 1.08x (ResNet-101) per epoch on a Titan XP.
Results are written to ``benchmarks/results/train_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from iadet.config import load_config
from iadet.engine.metrics import read_metrics
from iadet.engine.trainer import train
from iadet.modeling.methods import method_names

# Methods whose interesting phase starts later (A-Fast-RCNN's stages) are timed in that phase.
_JOINT = ["method.warmup_iters=0", "method.pretrain_iters=0"]  # A-Fast-RCNN's stage (c) from iteration 0
METHOD_OVERRIDES: dict[str, list[str]] = {
    "asdn": _JOINT,
    "fixed-asdn": _JOINT,
    "asdn+astn": _JOINT,
    "astn": ["method.warmup_iters=0"],
}

BACKBONE_OVERRIDES: dict[str, list[str]] = {
    "tiny": ["train.batch_size=4"],
    "resnet50_fpn": ["train.batch_size=2", "model.box_batch_size_per_image=512"],
}


def run_once(
    backbone: str,
    method: str,
    size: int,
    iters: int,
    seed: int,
    work: Path,
    device: str,
    data: str | None = None,
) -> list[float]:
    out = work / f"{backbone}-{method}-{seed}-{time.monotonic_ns()}"
    overrides = [
        f"model.backbone={backbone}",
        f"model.min_size={size}",
        f"model.max_size={size}",
        f"method.name={method}",
        f"train.max_iters={iters}",
        "train.log_every=1",
        "train.checkpoint_every=0",
        "train.eval_at_end=false",
        "train.warmup_iters=0",
        f"train.seed={seed}",
        f"train.device={device}",
        "data.num_workers=2",
        *([f"data.root={data}"] if data else []),
        *BACKBONE_OVERRIDES.get(backbone, []),
        *METHOD_OVERRIDES.get(method, []),
    ]
    train(load_config("quick", overrides), out, quiet=True)
    rows = [r for r in read_metrics(out / "metrics.jsonl") if r.get("type") == "train"]
    return [r["time"] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="tiny,resnet50_fpn")
    parser.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    parser.add_argument("--size", type=int, default=320, help="model.min_size = model.max_size")
    parser.add_argument("--iters", type=int, default=12, help="iterations per run")
    parser.add_argument("--skip", type=int, default=3, help="first iterations of each run left out")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin repetitions")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", default=None, help="dataset directory (default: the built-in quick data)")
    parser.add_argument("--output", default="benchmarks/results/train_overhead.json")
    args = parser.parse_args()

    methods = (
        args.methods.split(",") if args.methods else [m for m in method_names() if not m.startswith("test-")]
    )
    if "none" not in methods:
        methods.insert(0, "none")
    backbones = args.backbones.split(",")
    results: dict = {"device": args.device, "size": args.size, "iters": args.iters, "rounds": args.rounds}
    results["machine"] = (
        torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    )
    results["threads"] = torch.get_num_threads()
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in backbones:
            times: dict[str, list[float]] = {m: [] for m in methods}
            for r in range(args.rounds):
                for method in methods:
                    times[method] += run_once(
                        backbone, method, args.size, args.iters, r, Path(tmp), args.device, args.data
                    )[args.skip :]
            base = statistics.median(times["none"])
            table[backbone] = {
                m: {"median_s": statistics.median(t), "ratio": statistics.median(t) / base, "n": len(t)}
                for m, t in times.items()
            }
            print(f"\n{backbone} at {args.size}px ({results['machine']}, {results['threads']} threads)")
            print(f"{'method':<16}{'s/iter':>10}{'vs none':>10}")
            for m, row in table[backbone].items():
                print(f"{m:<16}{row['median_s']:>10.3f}{row['ratio']:>9.2f}x")
    results["table"] = table
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
