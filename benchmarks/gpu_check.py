"""The GPU check: training throughput, peak memory and overhead of IA and A-Fast-RCNN on one GPU.

Trains torchvision's ResNet-50-FPN Faster R-CNN (random initialisation: nothing is downloaded)
at 800 px (shorter side; longer side at most 1333) with mixed precision on the built-in quick
data, for each of ``none``, ``ia``, ``ia-code`` and ``asdn+astn`` (timed in A-Fast-RCNN's joint
stage, its adversaries active from the first iteration), a few hundred iterations each, and
writes per method and in a summary:

* ``images_per_s``: batch size / median seconds per iteration (the first ``--skip`` left out);
* ``peak_memory_mib``: ``torch.cuda.max_memory_allocated`` over the run;
* ``ratio``: the method's median step time over ``none``'s (the overhead).

Only public API is used (``iadet.config.load_config``, ``iadet.engine.trainer.train``, the run's
``metrics.jsonl``). ``--dry`` runs the same on the CPU with the tiny backbone, small images and a
handful of iterations, to check the script itself (a test does). See ``benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from iadet.config import load_config
from iadet.engine.metrics import read_metrics
from iadet.engine.trainer import train

METHODS = ("none", "ia", "ia-code", "asdn+astn")
METHOD_OVERRIDES: dict[str, list[str]] = {
    # A-Fast-RCNN's joint stage (c) from the first iteration: the adversaries' full cost
    "asdn+astn": ["method.warmup_iters=0", "method.pretrain_iters=0"],
}


def run_method(method: str, args: argparse.Namespace, work: Path) -> dict:
    out = work / method.replace("+", "_")
    overrides = [
        f"model.backbone={args.backbone}",
        f"model.min_size={args.size}",
        f"model.max_size={args.max_size}",
        f"method.name={method}",
        f"train.max_iters={args.iters}",
        f"train.batch_size={args.batch_size}",
        f"train.amp={'true' if args.amp else 'false'}",
        f"train.device={args.device}",
        "train.log_every=1",
        "train.checkpoint_every=0",
        "train.eval_at_end=false",
        "train.warmup_iters=0",
        "train.seed=0",
        f"data.num_workers={args.num_workers}",
        *([f"data.root={args.data}"] if args.data else []),
        *METHOD_OVERRIDES.get(method, []),
    ]
    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    train(load_config(None, overrides), out, quiet=True)
    wall = time.perf_counter() - start
    rows = [r for r in read_metrics(out / "metrics.jsonl") if r.get("type") == "train"]
    times = [r["time"] for r in rows][args.skip :]
    if not times:
        raise SystemExit(f"{method}: no iterations left after --skip {args.skip}")
    median = statistics.median(times)
    return {
        "method": method,
        "median_s_per_iter": median,
        "images_per_s": args.batch_size / median,
        "peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "iterations_timed": len(times),
        "wall_s": wall,
        "final_loss": rows[-1].get("loss") if rows else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--dry", action="store_true", help="CPU, tiny backbone, 96 px, 4 iterations: checks the script"
    )
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--iters", type=int, default=None, help="per method (default 250; --dry 4)")
    p.add_argument("--skip", type=int, default=None, help="first iterations left out (default 30; --dry 1)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--size", type=int, default=None, help="shorter side (default 800; --dry 96)")
    p.add_argument("--num-workers", type=int, default=None, help="data-loader workers (default 6; --dry 0)")
    p.add_argument("--data", default=None, help="dataset directory (default: the built-in quick data)")
    p.add_argument("--output", type=Path, default=Path("benchmarks/results/gpu"))
    args = p.parse_args(argv)

    dry = args.dry
    args.backbone = "tiny" if dry else "resnet50_fpn"
    args.device = "cpu" if dry else "cuda"
    args.amp = not dry
    args.iters = args.iters or (4 if dry else 250)
    args.skip = args.skip if args.skip is not None else (1 if dry else 30)
    args.size = args.size or (96 if dry else 800)
    args.max_size = round(args.size * 1333 / 800)
    args.num_workers = args.num_workers if args.num_workers is not None else (0 if dry else 6)
    if not dry and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; use --dry for the CPU check of the script", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if "none" not in methods:
        methods.insert(0, "none")

    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    setting = {
        "device": device_name,
        "dry": dry,
        "backbone": args.backbone,
        "min_size": args.size,
        "max_size": args.max_size,
        "amp": args.amp,
        "batch_size": args.batch_size,
        "iters": args.iters,
        "skip": args.skip,
        "torch": torch.__version__,
        "data": args.data or "built-in quick",
    }
    results = {}
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            row = run_method(method, args, Path(tmp))
            results[method] = row
            print(
                f"{method:<10} {row['images_per_s']:8.2f} img/s  {row['median_s_per_iter'] * 1e3:8.1f} ms/iter  "
                + (f"peak {row['peak_memory_mib']:.0f} MiB" if row["peak_memory_mib"] is not None else "")
                + f"  ({row['wall_s']:.0f} s)",
                flush=True,
            )
    base = results["none"]["median_s_per_iter"]
    for method, row in results.items():
        row["ratio"] = row["median_s_per_iter"] / base
        (args.output / f"{method.replace('+', '_')}.json").write_text(
            json.dumps({**setting, **row}, indent=2) + "\n"
        )
    summary = {**setting, "methods": results}
    (args.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("ratio to none: " + ", ".join(f"{m} {r['ratio']:.3f}x" for m, r in results.items()))
    print(f"wrote {args.output}/summary.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
