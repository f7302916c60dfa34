"""``iadet robustness``: the corruption benchmark (P / mPC / rPC) and the occlusion sweep."""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from iadet.cli.common import output_dir, positive_int
from iadet.engine.distributed import choose_device

DESCRIPTION = """\
Corruption benchmark (Michaelis et al. 2019): the detector's mAP on the clean split (P) and under
each corruption at each severity, applied to the original images, seeded per image; mPC is the
mean over corruptions and severities, rPC = mPC / P. Writes OUTPUT/robustness.json and
OUTPUT/severity.png (updated after every corruption and severity, "complete": false until the end).
Occlusion sweep (--occlusion): mAP with occluders from a held-out texture source pasted over the
given fraction of every ground-truth box; writes OUTPUT/occlusion.json and OUTPUT/occlusion.png,
one curve per checkpoint. --cache DIR keeps the corrupted images (keyed by image, corruption, severity
and seed; safe to interrupt) for the next checkpoint or run to read instead of recomputing. With several checkpoints each gets OUTPUT/<label>/ for its corruption
results, and OUTPUT/corruption_summary.png and OUTPUT/severity_comparison.png compare them.
VOC-layout data is scored with VOC07 mAP@0.5, COCO with COCO AP (override with --metric; several
metrics, e.g. --metric coco,voc07, score every pass with each and write OUTPUT/[LABEL/]METRIC/)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "robustness",
        help="corruption benchmark (P/mPC/rPC) and occlusion sweep",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", nargs="+", required=True, metavar="CKPT", help="one or more checkpoints")
    p.add_argument(
        "--label", nargs="+", default=None, help="a name per checkpoint (default: its run directory)"
    )
    p.add_argument("--data", default=None, help="dataset directory (default: each checkpoint's data.root)")
    p.add_argument("--config", default=None, help="config for a bare state dict without config.yaml")
    p.add_argument("--split", default=None, help="split to evaluate (default: data.test_split)")
    p.add_argument(
        "--corruptions",
        default=None,
        help="benchmark (the 15), all (+4 extra), noise, blur, weather, digital, or NAME,NAME "
        "(default: benchmark, unless only --occlusion is given)",
    )
    p.add_argument("--severities", default="1,2,3,4,5", help="comma-separated, 1 to 5 (default: all five)")
    p.add_argument(
        "--occlusion",
        default=None,
        metavar="FRACTIONS",
        help="occluded fractions of every ground-truth box, e.g. 0,0.1,0.2,0.3,0.4,0.5,0.6",
    )
    p.add_argument("--max-images", type=positive_int, default=None, help="evaluate the first N images only")
    p.add_argument(
        "--metric",
        type=metric_list,
        default=None,
        help="voc07, voc or coco, or several such as coco,voc07: each pass is scored with every one, and "
        "each metric's results go to OUTPUT/[LABEL/]METRIC/ (default: by the data's layout)",
    )
    p.add_argument("--seed", type=int, default=0, help="base of the per-image corruption/occluder seeds")
    p.add_argument("--batch-size", type=positive_int, default=None, help="default: eval.batch_size")
    p.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="data-loader workers, which run the corruptions (default: the CPU count, at most 8)",
    )
    p.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="directory of corrupted images to reuse and fill (e.g. shared by several detectors and runs)",
    )
    p.add_argument("--device", default=None)
    p.add_argument("--output", "-o", required=True, help="directory for the JSON files and plots")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=run)


METRICS = ("voc07", "voc", "coco")


def metric_list(text: str) -> list[str]:
    """``--metric``: ``"coco,voc07"`` -> ``["coco", "voc07"]``; an unknown or repeated name is an error."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in METRICS:
            raise argparse.ArgumentTypeError(f"unknown metric '{name}' (valid: {', '.join(METRICS)})")
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"give distinct metrics from {', '.join(METRICS)}, e.g. coco,voc07")
    return names


def checkpoint_labels(checkpoints: list[str], labels: list[str] | None) -> list[str]:
    """``--label`` or, per checkpoint, its run directory's name (``runs/ia/model_final.pth`` -> ``ia``).

    A run of ``iadet compare`` (``runs/<method>/seed<k>/``) is named ``<method> seed<k>``.
    """
    from iadet.errors import ConfigError

    if labels is not None:
        if len(labels) != len(checkpoints):
            raise ConfigError(f"--label gives {len(labels)} names for {len(checkpoints)} checkpoints")
        if len(set(labels)) != len(labels):
            raise ConfigError("--label names must be distinct")
        return list(labels)
    out: list[str] = []
    for ckpt in checkpoints:
        path = Path(ckpt)
        run = path.parent if path.stem in ("model_final", "checkpoint") and path.parent.name else None
        base = run.name if run is not None else path.stem
        if run is not None and re.fullmatch(r"seed\d+", base) and run.parent.name:
            base = f"{run.parent.name} {base}"
        name, k = base or "model", 1
        while name in out:
            k += 1
            name = f"{base}-{k}"
        out.append(name)
    return out


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON via a temporary file and a rename (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _save_partial(
    name: str, severity: int, value: float, *, table: dict, clean: float, path: Path, extra: dict, log: bool
) -> None:
    """``corruption_summary``'s ``on_cell``: rewrite robustness.json with the cells so far (and log one line)."""
    from iadet.robustness.metrics import performance_under_corruption

    table.setdefault(name, {})[severity] = value
    partial = performance_under_corruption(clean, table, allow_partial=True)
    write_json(path, {**partial, "complete": False, **extra})
    if log:
        metric = {"voc07": "VOC07 mAP", "voc": "VOC area mAP", "coco": "COCO AP"}.get(
            extra.get("metric"), "mAP"
        )
        print(f"{extra['label']}: {name} severity {severity}: {metric} {100 * value:.1f}", flush=True)


def run(args: argparse.Namespace) -> int:
    import torch

    from iadet.data.catalog import data_root, open_split
    from iadet.engine.inference import predict, score
    from iadet.engine.loading import load_detector
    from iadet.errors import ConfigError
    from iadet.robustness import plots
    from iadet.robustness.cache import CorruptionCache
    from iadet.robustness.corruptions import resolve_corruptions
    from iadet.robustness.evaluate import (
        corruption_summaries,
        default_metric,
        default_occluder,
        occlusion_curve,
        parse_fractions,
        parse_severities,
        summary_table,
    )

    # everything the user typed is checked before any model is loaded
    output_dir(args.output)
    fractions = parse_fractions(args.occlusion) if args.occlusion is not None else None
    spec = args.corruptions if args.corruptions is not None else (None if fractions else "benchmark")
    names = resolve_corruptions(spec) if spec is not None else []
    severities = parse_severities(args.severities)
    labels = checkpoint_labels(args.checkpoint, args.label)
    occluder = default_occluder() if fractions else None
    cache = CorruptionCache(args.cache) if args.cache and names else None
    device = choose_device(args.device)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = not args.quiet and sys.stderr.isatty()
    overrides = [f"data.root={args.data}"] if args.data else []
    num_workers = args.num_workers if args.num_workers is not None else min(os.cpu_count() or 1, 8)

    corruption_results: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, Any]] = {}
    data_of_first = None
    for ckpt, label in zip(args.checkpoint, labels):
        model, cfg = load_detector(ckpt, config=args.config, overrides=overrides, device=device)
        root = data_root(cfg.data)
        if data_of_first is None:
            data_of_first = root
        elif root.resolve() != data_of_first.resolve():
            raise ConfigError(
                f"{ckpt} was trained on {root}, {args.checkpoint[0]} on {data_of_first}: pass --data to "
                "evaluate all checkpoints on the same data"
            )
        split_name = args.split or cfg.data.test_split
        split = open_split(root, split_name, fmt=cfg.data.format, classes=cfg.data.classes)
        metrics = args.metric or [default_metric(split)]
        metric = metrics[0]
        common = dict(
            max_images=args.max_images,
            batch_size=args.batch_size or cfg.eval.batch_size,
            num_workers=num_workers,
            seed=args.seed,
            progress=progress,
            proposals=cfg.data.proposals,
        )
        detections = predict(
            model,
            split,
            device,
            **{k: v for k, v in common.items() if k != "seed"},
            desc=f"{label} clean",
        )
        clean = {m: score(detections, split, m)["mAP"] for m in metrics}
        if not args.quiet:
            for m in metrics:
                print(f"{label}: clean {m} mAP = {100 * clean[m]:.1f}", flush=True)
        meta = {"label": label, "checkpoint": str(ckpt)}

        if names:
            base = out_dir / label if len(labels) > 1 else out_dir
            targets = {m: base / m if len(metrics) > 1 else base for m in metrics}
            savers = {
                m: functools.partial(
                    _save_partial,
                    table={},
                    clean=clean[m],
                    path=targets[m] / "robustness.json",
                    extra={**meta, "metric": m, "split": split_name},
                    log=not args.quiet and not progress,  # a line per cell when there is no progress bar
                )
                for m in metrics
            }

            def on_cell(name: str, severity: int, maps: dict[str, float], savers=savers) -> None:
                for m, save in savers.items():
                    save(name, severity, maps[m])

            results = corruption_summaries(
                model, split, device, names, severities, metrics=metrics, clean=clean, on_cell=on_cell,
                cache=cache, **common,
            )  # fmt: skip
            for m, result in results.items():
                result.update(meta)
                write_json(targets[m] / "robustness.json", result)
                plots.plot_severity(result, targets[m] / "severity.png", title=label)
                if not args.quiet:
                    rpc = "-" if result["rPC"] is None else f"{100 * result['rPC']:.1f} %"
                    print(
                        f"{label}: {m}: P {100 * result['P']:.1f}  mPC {100 * result['mPC']:.1f}  rPC {rpc} "
                        f"-> {targets[m] / 'robustness.json'}",
                        flush=True,
                    )
            corruption_results[label] = results[metric]

        if fractions:
            curve = occlusion_curve(
                model, split, device, fractions, metric=metric, occluder=occluder, clean=clean[metric],
                coverage=not curves, **common,
            )  # fmt: skip
            if curves:  # the coverage depends on the data and the seed only: measured once
                curve["coverage"] = next(iter(curves.values()))["coverage"]
            curves[label] = {**curve, **meta}
            if not args.quiet:
                points = "  ".join(f"{f:g}: {100 * v:.1f}" for f, v in zip(curve["fractions"], curve["mAP"]))
                print(f"{label}: occluded mAP  {points}", flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()

    if len(corruption_results) > 1:
        plots.plot_corruption_summary(corruption_results, out_dir / "corruption_summary.png")
        plots.plot_severity_comparison(corruption_results, out_dir / "severity_comparison.png")
        if not args.quiet:
            print(summary_table(corruption_results))
    if curves:
        first = next(iter(curves.values()))
        occlusion = {
            "fractions": first["fractions"],
            "coverage": first["coverage"],
            "metric": first["metric"],
            "split": first["split"],
            "images": first["images"],
            "seed": args.seed,
            "curves": {
                label: {"checkpoint": c["checkpoint"], "mAP": c["mAP"]} for label, c in curves.items()
            },
        }
        write_json(out_dir / "occlusion.json", occlusion)
        plots.plot_occlusion(curves, out_dir / "occlusion.png")
        if not args.quiet:
            print(f"occlusion sweep -> {out_dir / 'occlusion.json'}, {out_dir / 'occlusion.png'}")
    return 0
