"""Training step-time overhead of each method versus the baseline (``none``).

Trains short runs of every method in alternation (round-robin, so drift in machine load
hits all methods alike) on the same built-in data, reads each iteration's ``time`` from
the runs' ``metrics.jsonl``, drops the first iterations of each run (warm-up), and prints
the median seconds per iteration and its ratio to ``none``::

    python benchmarks/train_overhead.py                       # tiny and resnet50_fpn at 320 px
    python benchmarks/train_overhead.py --backbones tiny --methods none,ia,ia-code --rounds 5
    python benchmarks/train_overhead.py --flops --backbones vgg16,resnet50_fpn --size 600 --max-size 1000 \
        --rois 128 --methods none,ia --rounds 1 --iters 4 --skip 1   # the papers' scale

``--flops`` adds the analytic floor of each method's overhead: the FLOPs of one training step
(the first, same images and sampled RoIs for every method) counted with
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products, forward and
backward), as a ratio to ``none``'s. IA's extra work is a forward and an input-gradient pass of
the box head over its selected RoIs, so ``floor = 1 + FLOPs(probe) / FLOPs(step)``; a measured
ratio near the floor means the implementation adds little beyond that work.

The IA paper reports 1.05x (VGG16) and 1.08x (ResNet-101) per epoch on a Titan XP.
Results are written to ``benchmarks/results/train_overhead.json``.

Depends only on public API: ``iadet.config.load_config``, ``iadet.engine.training_run.train``,
``iadet.engine.metrics.read_metrics`` and ``iadet.modeling.methods.method_names``.
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
from torch.utils.flop_counter import FlopCounterMode

from iadet.config import load_config
from iadet.engine.metrics import read_metrics
from iadet.engine.training_run import train
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
    "vgg16": ["train.batch_size=2", "model.box_batch_size_per_image=512"],
}


def _overrides(
    backbone: str,
    method: str,
    size: int,
    max_size: int | None,
    iters: int,
    seed: int,
    device: str,
    data: str | None,
    rois: int | None,
    workers: int = 2,
) -> list[str]:
    return [
        f"model.backbone={backbone}",
        f"model.min_size={size}",
        f"model.max_size={max_size or size}",
        f"method.name={method}",
        f"train.max_iters={iters}",
        "train.log_every=1",
        "train.checkpoint_every=0",
        "train.eval_at_end=false",
        "train.warmup_iters=0",
        f"train.seed={seed}",
        f"train.device={device}",
        f"data.num_workers={workers}",
        *([f"data.root={data}"] if data else []),
        *BACKBONE_OVERRIDES.get(backbone, []),
        *([f"model.box_batch_size_per_image={rois}"] if rois else []),
        *METHOD_OVERRIDES.get(method, []),
    ]


class _GlobalOnly:
    """A stand-in for ``FlopCounterMode``'s module tracker: totals only. The tracker's backward hooks
    break ``torch.autograd.grad`` on module outputs (IA's probe: "A leaf node was passed to
    _will_engine_execute_node but we are currently running autograd.grad()")."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


class _StepFlopCounter(FlopCounterMode):
    """``FlopCounterMode`` (its FLOP formulas and totals) without per-module attribution."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mod_tracker = _GlobalOnly()


def step_flops(
    backbone: str,
    method: str,
    size: int,
    max_size: int | None,
    work: Path,
    device: str,
    data: str | None = None,
    rois: int | None = None,
) -> int:
    """FLOPs of one training step (the first: the same images and sampled RoIs for every method),
    counted by ``FlopCounterMode`` around ``train`` (data loading in the main process, so every
    counted op is the step's; optimiser updates are element-wise and count 0)."""
    out = work / f"flops-{backbone}-{method}-{time.monotonic_ns()}"
    cfg = load_config(
        "quick", _overrides(backbone, method, size, max_size, 1, 0, device, data, rois, workers=0)
    )
    with _StepFlopCounter(display=False) as counter:
        train(cfg, out, quiet=True)
    return int(counter.get_total_flops())


def run_once(
    backbone: str,
    method: str,
    size: int,
    iters: int,
    seed: int,
    work: Path,
    device: str,
    data: str | None = None,
    max_size: int | None = None,
    rois: int | None = None,
) -> list[float]:
    out = work / f"{backbone}-{method}-{seed}-{time.monotonic_ns()}"
    train(
        load_config("quick", _overrides(backbone, method, size, max_size, iters, seed, device, data, rois)),
        out,
        quiet=True,
    )
    rows = [r for r in read_metrics(out / "metrics.jsonl") if r.get("type") == "train"]
    return [r["time"] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="tiny,resnet50_fpn")
    parser.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    parser.add_argument(
        "--size", type=int, default=320, help="model.min_size (and max_size unless --max-size)"
    )
    parser.add_argument("--max-size", type=int, default=None, help="model.max_size (default: --size)")
    parser.add_argument("--rois", type=int, default=None, help="model.box_batch_size_per_image (papers: 128)")
    parser.add_argument(
        "--flops", action="store_true", help="also count each step's FLOPs: the analytic floor"
    )
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
    results: dict = {
        "device": args.device,
        "size": args.size,
        "max_size": args.max_size or args.size,
        "rois_per_image": args.rois,
        "iters": args.iters,
        "rounds": args.rounds,
    }
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
                        backbone,
                        method,
                        args.size,
                        args.iters,
                        r,
                        Path(tmp),
                        args.device,
                        args.data,
                        args.max_size,
                        args.rois,
                    )[args.skip :]
            base = statistics.median(times["none"])
            table[backbone] = {
                m: {"median_s": statistics.median(t), "ratio": statistics.median(t) / base, "n": len(t)}
                for m, t in times.items()
            }
            if args.flops:
                flops = {
                    m: step_flops(
                        backbone, m, args.size, args.max_size, Path(tmp), args.device, args.data, args.rois
                    )
                    for m in methods
                }
                for m, row in table[backbone].items():
                    row["step_gflops"] = flops[m] / 1e9
                    row["floor"] = flops[m] / flops["none"]
            size = f"{args.size}px" + (f" (max {args.max_size})" if args.max_size else "")
            print(f"\n{backbone} at {size} ({results['machine']}, {results['threads']} threads)")
            print(
                f"{'method':<16}{'s/iter':>10}{'vs none':>10}"
                + (f"{'GFLOP/step':>12}{'floor':>8}" if args.flops else "")
            )
            for m, row in table[backbone].items():
                print(
                    f"{m:<16}{row['median_s']:>10.3f}{row['ratio']:>9.3f}x"
                    + (f"{row['step_gflops']:>12.1f}{row['floor']:>7.3f}x" if args.flops else "")
                )
    results["table"] = table
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
