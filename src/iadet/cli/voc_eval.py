"""``iadet voc-eval``: the PASCAL VOC devkit's evaluation of detection files, from any detector.

    iadet voc-eval --annotations VOC2007/Annotations --image-set VOC2007/ImageSets/Main/test.txt \\
        --detections 'results/comp4_det_test_{}.txt' [--classes a,b,...] [--metric voc07|voc] [--iou 0.5]

Prints a per-class table, then, as the last line of stdout, ``{"mAP": ..., "ap": {...}}`` (0-1).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from iadet.errors import DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    from iadet.evaluation.voc import METRICS

    parser = subparsers.add_parser(
        "voc-eval",
        help="PASCAL VOC devkit evaluation of detection files",
        description=(
            "Evaluate detection files in the PASCAL VOC devkit's format (one file per class, lines "
            "'image_id score xmin ymin xmax ymax' in the XML's 1-based pixel coordinates) with the "
            "devkit's rules. Prints a per-class AP table; the last line of stdout is "
            '{"mAP": float, "ap": {class: float}}, APs in 0-1.'
        ),
    )
    parser.add_argument(
        "--annotations", required=True, metavar="DIR", help="directory of <image id>.xml files"
    )
    parser.add_argument(
        "--image-set",
        required=True,
        metavar="FILE",
        help="image ids to evaluate, one per line (e.g. test.txt)",
    )
    parser.add_argument(
        "--detections",
        required=True,
        metavar="PATTERN",
        help="detection file path with {} for the class name, e.g. 'results/comp4_det_test_{}.txt'; "
        "a missing file counts as no detections (AP 0)",
    )
    parser.add_argument(
        "--classes", metavar="A,B,...", help="comma-separated class names (default: the 20 VOC classes)"
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default="voc07",
        help="voc07: 11-point AP (VOC2007 test); voc: area under the precision envelope (VOC2010+)",
    )
    parser.add_argument(
        "--iou", type=float, default=0.5, help="a match needs IoU strictly above this (default 0.5)"
    )
    parser.set_defaults(func=run)


def parse_classes(text: str | None) -> tuple[str, ...]:
    """``"a,b,c"`` -> ``("a", "b", "c")``; None -> the VOC classes. Empty names or duplicates are errors."""
    from iadet.data.records import VOC_CLASSES

    if text is None:
        return VOC_CLASSES
    names = [name.strip() for name in text.split(",")]
    if not any(names):
        raise DataError("--classes is empty")
    if not all(names):
        raise DataError(f"--classes {text!r} has an empty class name")
    duplicate = next((name for k, name in enumerate(names) if name in names[:k]), None)
    if duplicate is not None:
        raise DataError(f"--classes lists '{duplicate}' twice")
    return tuple(names)


def run(args: argparse.Namespace) -> int:
    from iadet.evaluation.table import format_result
    from iadet.evaluation.voc_files import evaluate_voc_files

    classes = parse_classes(args.classes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate_voc_files(
            args.annotations, args.image_set, args.detections, classes, metric=args.metric, iou=args.iou
        )
    for warning in caught:
        print(f"iadet: warning: {warning.message}", file=sys.stderr)
    print(format_result(result))
    print(json.dumps(result.to_json()))
    return 0
