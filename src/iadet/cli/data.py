"""``iadet data``: generate the built-in data, or check a dataset and list every problem."""

from __future__ import annotations

import argparse
from pathlib import Path

from iadet.cli.common import output_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="built-in data (synth) and dataset validation (check)")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    s = verbs.add_parser(
        "synth",
        help="write the built-in dataset (PASCAL VOC layout)",
        description="Write the deterministic built-in dataset: Annotations/, JPEGImages/, "
        "ImageSets/Main/{trainval,test,test_occluded,test_erased}.txt, SegmentationObject/, classes.txt.",
    )
    s.add_argument("--output", "-o", required=True)
    s.add_argument("--preset", default="quick", help="quick (the demo), full (the benchmark) or tiny (tests)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=run_synth)

    c = verbs.add_parser(
        "check",
        help="validate a dataset and list every problem with file names",
        description="Parse every annotation and decode every image of every split; report all problems at once.",
    )
    c.add_argument("root", metavar="DIR")
    c.add_argument("--split", action="append", default=None, help="only these splits (repeatable)")
    c.add_argument("--classes", default=None, help="comma-separated class names (default: from the dataset)")
    c.set_defaults(func=run_check)


def run_synth(args: argparse.Namespace) -> int:
    from iadet.data import synth
    from iadet.errors import ConfigError, closest

    if args.preset not in synth.DATASET_PRESETS:
        raise ConfigError(
            f"unknown preset '{args.preset}'{closest(args.preset, synth.DATASET_PRESETS)}; valid: {', '.join(synth.DATASET_PRESETS)}"
        )
    output_dir(args.output, create=False)  # the generator refuses a directory it did not make
    root = synth.generate_dataset(args.output, preset=args.preset, seed=args.seed, progress=True)
    print(f"wrote the '{args.preset}' built-in dataset (seed {args.seed}) to {root}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from iadet.data.check import check_dataset

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    report = check_dataset(Path(args.root), splits=args.split, classes=classes)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1
