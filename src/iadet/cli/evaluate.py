"""``iadet eval``: score a checkpoint on a split, write result files, or tabulate eval.json files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from iadet.cli.common import add_config_args, overrides_with_data, positive_int
from iadet.engine.distributed import choose_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint (VOC07/VOC/COCO metrics), write result files",
        description="Evaluate a checkpoint on a split. Prints a per-class AP table; the last stdout line is a JSON "
        'summary with "mAP" (0-1). Writes eval.json beside the checkpoint (eval_<split>.json for other splits).',
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        help="checkpoint.pth or model_final.pth (its config.yaml is read from beside it); repeat it to "
        "evaluate the ensemble (class probabilities and box regressions averaged per RoI; written to "
        "eval_ensemble.json beside the first unless --output)",
    )
    add_config_args(p)
    p.add_argument("--split", default=None, help="split to evaluate (default: data.test_split)")
    p.add_argument("--metric", choices=["voc07", "voc", "coco"], default=None, help="default: eval.metric")
    p.add_argument("--iou", type=float, default=None, help="VOC IoU threshold (default 0.5)")
    p.add_argument("--max-images", type=positive_int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
    p.add_argument("--output", default=None, help="where to write the JSON summary")
    p.add_argument(
        "--write-results",
        metavar="DIR",
        default=None,
        help="also write server result files: DIR/results/VOC2012/Main/comp4_det_test_<class>.txt, "
        "or DIR/detections_<split>_results.json for COCO",
    )
    p.add_argument(
        "--table", nargs="+", metavar="EVAL_JSON", help="print a Markdown per-class table of eval.json files"
    )
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iadet.errors import ConfigError

    if args.table:
        from iadet.evaluation.table import format_table, read_eval_files

        print(format_table(read_eval_files(args.table)))
        return 0
    if not args.checkpoint:
        raise ConfigError("iadet eval needs --checkpoint (or --table FILES)")
    if args.output:
        from iadet.cli.common import output_file

        output_file(args.output)

    from iadet.engine.ensemble import load_ensemble
    from iadet.engine.inference import evaluate_split

    device = choose_device(args.device)
    model, cfg, members = load_ensemble(
        args.checkpoint, config=args.config, overrides=overrides_with_data(args), device=device
    )
    ensemble = len(args.checkpoint) > 1
    split_name = args.split or cfg.data.test_split
    split, predictions, summary = evaluate_split(
        model,
        cfg,
        split_name,
        device,
        metric=args.metric,
        iou=args.iou,
        max_images=args.max_images,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    summary["checkpoint"] = str(args.checkpoint[0]) if not ensemble else [str(c) for c in args.checkpoint]
    if ensemble:
        summary["method"] = "ensemble(" + ", ".join(c.method.name for c in members) + ")"
        summary["backbone"] = "+".join(dict.fromkeys(c.model.backbone for c in members))
    if args.write_results:
        write_result_files(predictions, split, Path(args.write_results))
    ckpt_dir = Path(args.checkpoint[0]).parent
    stem = "eval_ensemble" if ensemble else "eval"
    default_name = (
        f"{stem}.json" if split_name == cfg.data.test_split else f"{stem}_{split_name.replace('/', '_')}.json"
    )
    out = Path(args.output) if args.output else ckpt_dir / default_name
    out.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if not args.quiet:
        from iadet.evaluation.table import format_summary

        print(f"{split_name} ({summary['metric']}), {summary['images']} images")
        print(format_summary(summary))
    print(json.dumps({k: summary[k] for k in ("mAP", "metric", "split", "ap") if k in summary}))
    return 0


def write_result_files(predictions: dict, split, directory: Path) -> None:
    from iadet.evaluation.results import write_coco_results, write_voc_results

    if split.format == "coco":
        ids = split.extra["category_ids"]
        path = directory / f"detections_{split.name}_results.json"
        image_ids = {r.image_id: r.extra["coco_id"] for r in split.records}
        write_coco_results(predictions, ids, path, image_ids=image_ids)
    else:
        write_voc_results(predictions, split.classes, directory, split=split.name.split("/")[-1])
