"""``iadet analyze errors``: where a detector loses AP (TIDE's breakdown), its PR curves and confusion matrix,
and with two checkpoints the errors each makes that the other does not (A-Fast-RCNN's Fig. 6).
``iadet analyze parts``: how much each detector relies on the single most important part of an object."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from iadet.cli.common import add_config_args, output_dir, overrides_with_data, positive_int, probability
from iadet.engine.distributed import choose_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="error analysis: TIDE's breakdown, PR curves, confusion matrix, errors of A that B does not make",
        description="Analyses of a checkpoint's detections on a split.",
    )
    kinds = p.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    e = kinds.add_parser(
        "errors",
        help="TIDE's error breakdown, PR curves and confusion matrix; with two checkpoints, the errors of each "
        "that the other does not make",
        description="Runs each checkpoint on the split (as `iadet eval` does) and writes OUTPUT/errors.json: per "
        "checkpoint the AP lost to each of TIDE's error types (Cls, Loc, Both, Dupe, Bkg, Missed; dAP per class "
        "and overall, on the devkit's true positives and area AP at IoU 0.5), the precision-recall curve of every "
        "class and a confusion matrix; and PNGs of each (errors_<label>.png, pr_<label>.png, "
        "confusion_<label>.png). With two checkpoints also the top-scored false positives of each that the other "
        "does not make, as contact sheets (wrong_<A>_not_<B>.png and the reverse), each tile labelled with its "
        "error type.",
    )
    e.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="CKPT",
        help="checkpoint.pth or model_final.pth; give it twice to compare two detectors (A, then B)",
    )
    e.add_argument(
        "--label", action="append", default=None, help="a name per checkpoint (default: its run directory)"
    )
    add_config_args(e)
    e.add_argument("--split", default=None, help="split to analyse (default: data.test_split)")
    e.add_argument("--max-images", type=positive_int, default=None, help="the first N images only")
    e.add_argument(
        "--score-threshold",
        type=probability,
        default=0.3,
        help="detections scoring at least this enter the confusion matrix (default 0.3)",
    )
    e.add_argument(
        "--top", type=positive_int, default=24, help="two checkpoints: errors per contact sheet (default 24)"
    )
    e.add_argument(
        "--min-score",
        type=float,
        default=0.0,
        help="two checkpoints: the other detector makes an error too only with a false positive scored at least "
        "this (default 0: any of its detections)",
    )
    e.add_argument(
        "--columns", type=positive_int, default=6, help="tiles per row of a contact sheet (default 6)"
    )
    e.add_argument("--tile", type=positive_int, default=128, help="tile size in pixels (default 128)")
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
    e.add_argument("--output", "-o", required=True, help="directory for errors.json and the PNGs")
    e.add_argument("--quiet", "-q", action="store_true")
    e.set_defaults(func=run_errors)

    r = kinds.add_parser(
        "parts",
        help="part reliance on the built-in data: the drop of each object's class probability when each of its "
        "four parts is hidden",
        description="For every non-difficult object of the built-in data's split whose four parts are visible, "
        "hides each part in the image (filled with the body colour) and scores the object's box again with each "
        "checkpoint's box head. Writes OUTPUT/part_reliance.json (per detector the summary and every object's "
        "drops), part_reliance.md (the table) and part_reliance.png: the drop when the most relied-on part is "
        "hidden against the mean of the other three, and that part's share of the drops. IA's claim is that it "
        "spreads the detector's reliance over the whole object.",
    )
    r.add_argument("--checkpoint", action="append", required=True, metavar="CKPT", help="repeat to compare")
    r.add_argument(
        "--label", action="append", default=None, help="a name per checkpoint (default: its run directory)"
    )
    add_config_args(r)
    r.add_argument("--split", default="test", help="split of the built-in data (default: test)")
    r.add_argument("--max-images", type=positive_int, default=None, help="the first N images only")
    r.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
    r.add_argument("--output", "-o", required=True, help="directory for part_reliance.{json,md,png}")
    r.add_argument("--quiet", "-q", action="store_true")
    r.set_defaults(func=run_parts)


def _labels(checkpoints: list[str], given: list[str] | None) -> list[str]:
    from iadet.errors import ConfigError

    if given is not None and len(given) != len(checkpoints):
        raise ConfigError(f"--label: {len(given)} label(s) for {len(checkpoints)} checkpoint(s)")
    labels = list(given) if given else [Path(c).resolve().parent.name or "model" for c in checkpoints]
    labels = [re.sub(r"[^A-Za-z0-9_.+-]+", "_", label).strip("._") or "model" for label in labels]
    if len(set(labels)) < len(labels):
        labels = [f"{label}-{k}" for k, label in enumerate(labels, start=1)]
    return labels


def _detect(args: argparse.Namespace, checkpoint: str, device) -> tuple[Any, dict, dict]:
    """``(split, ground truth, predictions)`` of one checkpoint on the split, as ``iadet eval`` runs it."""
    from iadet.engine.inference import evaluate_split
    from iadet.engine.loading import load_detector

    model, cfg = load_detector(
        checkpoint, config=args.config, overrides=overrides_with_data(args), device=device
    )
    split, predictions, _ = evaluate_split(
        model,
        cfg,
        args.split or cfg.data.test_split,
        device,
        metric="voc",
        iou=0.5,
        max_images=args.max_images,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    ground_truth = {k: v for k, v in split.ground_truth().items() if k in predictions}
    return split, ground_truth, predictions


def _table(rows: dict[str, dict]) -> str:
    from iadet.evaluation.tide import ERROR_TYPES, SHORT_NAMES, SPECIAL_TYPES

    types = [*ERROR_TYPES, *SPECIAL_TYPES]
    lines = [
        "| detector | AP | " + " | ".join(SHORT_NAMES[t] for t in types) + " |",
        "|---|---|" + "---|" * len(types),
    ]
    for label, b in rows.items():
        cells = [f"{100 * b['ap']['overall']:.1f}"]
        cells += [f"{100 * b['dap' if t in ERROR_TYPES else 'special'][t]['overall']:.1f}" for t in types]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "AP: the devkit's area AP at IoU 0.5 (%); the others: AP points gained by fixing that error type.",
    ]
    return "\n".join(lines)


def run_errors(args: argparse.Namespace) -> int:
    from iadet.data.images import load_image
    from iadet.errors import CheckpointError, ConfigError, DataError
    from iadet.evaluation.confusion import confusion_matrix
    from iadet.evaluation.tide import analyze_errors, errors_not_made_by
    from iadet.visualization import error_plots as plots

    checkpoints = list(args.checkpoint)
    if len(checkpoints) > 2:
        raise ConfigError(f"iadet analyze errors takes one or two --checkpoint, got {len(checkpoints)}")
    for path in checkpoints:  # all refusals before any work
        if not Path(path).is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
    labels = _labels(checkpoints, args.label)
    out = output_dir(args.output)
    device = choose_device(args.device)

    detectors: list[dict[str, Any]] = []
    analyses, paths, split, ground_truth = [], {}, None, None
    for label, checkpoint in zip(labels, checkpoints):
        this_split, this_gt, predictions = _detect(args, checkpoint, device)
        if split is None:
            split, ground_truth = this_split, this_gt
        elif list(this_split.classes) != list(split.classes) or list(this_gt) != list(ground_truth):
            raise DataError(
                f"{checkpoints[0]} and {checkpoint} do not see the same split (classes or images differ): "
                "check their data.root and data.classes"
            )
        analysis = analyze_errors(ground_truth, predictions, split.classes)
        confusion = confusion_matrix(
            ground_truth, predictions, split.classes, score_threshold=args.score_threshold
        )
        breakdown, curves = analysis.breakdown(), analysis.pr_curves()
        pngs = {
            "errors": plots.plot_error_breakdown(breakdown, out / f"errors_{label}.png", title=label).name,
            "pr_curves": plots.plot_pr_curves(curves, out / f"pr_{label}.png").name,
            "confusion_matrix": plots.plot_confusion_matrix(
                confusion, out / f"confusion_{label}.png", title=label
            ).name,
        }
        analyses.append(analysis)
        detectors.append(
            {
                "label": label,
                "checkpoint": str(checkpoint),
                "breakdown": breakdown,
                "pr_curves": curves,
                "confusion_matrix": confusion,
                "png": pngs,
            }
        )
        paths.update({r.image_id: r.path for r in this_split.records})

    result: dict[str, Any] = {"split": split.name, "images": len(ground_truth), "detectors": detectors}
    if len(analyses) == 2:
        result["differences"] = []
        for (a, la), (b, lb) in (((analyses[0], labels[0]), (analyses[1], labels[1])),
                                 ((analyses[1], labels[1]), (analyses[0], labels[0]))):  # fmt: skip
            wrong = errors_not_made_by(a, b, min_score=args.min_score, count=args.top)
            sheet = plots.error_sheet(
                wrong,
                lambda image_id: load_image(paths[image_id]),
                columns=args.columns,
                tile=args.tile,
                title=f"top-scored errors of {la} that {lb} does not make",
            )
            name = f"wrong_{la}_not_{lb}.png"
            sheet.save(out / name)
            result["differences"].append({"wrong": la, "right": lb, "errors": wrong, "png": name})

    (out / "errors.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    if not args.quiet:
        print(f"{split.name}, {len(ground_truth)} images")
        print(_table({d["label"]: d["breakdown"] for d in detectors}))
    print(
        json.dumps(
            {
                "output": str(out / "errors.json"),
                "AP": {d["label"]: d["breakdown"]["ap"]["overall"] for d in detectors},
                "dAP": {
                    d["label"]: {k: v["overall"] for k, v in d["breakdown"]["dap"].items()} for d in detectors
                },
            }
        )
    )
    return 0


def run_parts(args: argparse.Namespace) -> int:
    from iadet.engine.loading import load_detector
    from iadet.errors import CheckpointError
    from iadet.robustness.part_reliance import (
        detector_probabilities,
        split_reliance,
        summarize,
        write_part_reliance,
    )

    for path in args.checkpoint:  # all refusals before any work
        if not Path(path).is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
    labels = _labels(list(args.checkpoint), args.label)
    out = output_dir(args.output)
    device = choose_device(args.device)
    results = {}
    for label, checkpoint in zip(labels, args.checkpoint):
        model, cfg = load_detector(
            checkpoint, config=args.config, overrides=overrides_with_data(args), device=device
        )
        rows = split_reliance(
            cfg, detector_probabilities(model, device), split=args.split, max_images=args.max_images
        )
        results[label] = (rows, summarize(rows))
    write_part_reliance(results, out, args.split)
    if not args.quiet:
        print((out / "part_reliance.md").read_text(encoding="utf-8"), end="")
    return 0
