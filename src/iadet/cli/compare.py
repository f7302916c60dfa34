"""``iadet compare``: methods × seeds on the same data, honest statistics, a report with plots."""

from __future__ import annotations

import argparse

from iadet.cli.common import output_dir, positive_int


def _fractions(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions, got {text!r}") from None
    if not values or any(not 0 <= v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"fractions must be in [0, 1), got {text!r}")
    return values


def _severities(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated severities, got {text!r}") from None
    if not values or any(v not in range(1, 6) for v in values):
        raise argparse.ArgumentTypeError(f"severities are 1..5, got {text!r}")
    return values


def seed_list(text: str) -> int | list[int]:
    """``--seeds``: ``5`` (a count: seeds 0-4 from ``train.seed``) or ``0,1,2,5`` (the seeds; ``5,`` is seed 5 alone)."""
    if "," not in text:
        return positive_int(text)
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or comma-separated seeds, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be non-negative integers, got {text!r}")
    return seeds


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="train and compare methods over seeds, with statistics and plots",
        description="Train every method x seed with the same data and schedule, evaluate on test and "
        "test_occluded and test_erased, and write results.json, report.md and plots. Finished runs are reused.",
    )
    p.add_argument(
        "--methods",
        default="none,ia",
        help="comma-separated methods (default: none,ia); a variant sets parameters: ia:strategy=hard:roi_ratio=0.5",
    )
    p.add_argument(
        "--seeds",
        type=seed_list,
        default=3,
        help="seeds per method (a count from train.seed, default 3) or the seeds themselves: 0,1,2,5 "
        "(a single seed with a comma: 6,)",
    )
    p.add_argument(
        "--preset",
        choices=["quick", "full", "finetune"],
        default="quick",
        help="built-in data and its config",
    )
    p.add_argument("--config", default=None, help="config (default: the preset's built-in config)")
    p.add_argument("--data", default=None, help="dataset directory instead of the built-in data")
    p.add_argument("--output", "-o", default=None, help="default: runs/compare-<preset>")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--splits", default=None, help="comma-separated splits (default: test, test_occluded and test_erased)"
    )
    p.add_argument(
        "--corruptions", default=None, help="also the corruption benchmark: benchmark|all|GROUP|NAME,..."
    )
    p.add_argument("--severities", type=_severities, default=[1, 2, 3, 4, 5])
    p.add_argument(
        "--max-images", type=positive_int, default=None, help="images per corruption/occlusion eval"
    )
    p.add_argument(
        "--occlusion", type=_fractions, default=None, help="also the occlusion curve: 0,0.2,0.4,0.6"
    )
    p.add_argument(
        "--parts",
        action="store_true",
        help="also each run's part reliance on the built-in data (iadet analyze parts), aggregated per method",
    )
    p.add_argument(
        "--primary",
        choices=["voc07", "voc", "AP", "AP50", "AP75"],
        default=None,
        help="metric of the headline tables (default: AP for --preset finetune, voc07 otherwise)",
    )
    p.add_argument(
        "--finished-only",
        action="store_true",
        help="train nothing: tables from the finished runs (here or committed); methods missing a seed are listed",
    )
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iadet.comparison.compare import CompareSpec, run_compare
    from iadet.comparison.report import paired_table, pending_line, results_table
    from iadet.config import CONFIG_PRESETS
    from iadet.config.presets import PRIMARY_METRICS

    # the preset's built-in data (finetune trains on the quick data), also under a --config of one's own
    overrides = [f"data.preset={CONFIG_PRESETS[args.preset]['data']['preset']}", *args.overrides]
    if args.data:
        overrides.append(f"data.root={args.data}")
    spec = CompareSpec(
        methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        seeds=args.seeds,
        output=output_dir(args.output or f"runs/compare-{args.preset}"),
        config=args.config or args.preset,
        overrides=overrides,
        splits=[s.strip() for s in args.splits.split(",")] if args.splits else None,
        corruptions=args.corruptions,
        severities=args.severities,
        max_images=args.max_images,
        occlusion=args.occlusion,
        parts=args.parts,
        primary=args.primary or PRIMARY_METRICS.get(args.preset, "voc07"),
        finished_only=args.finished_only,
        device=args.device,
        quiet=args.quiet,
    )
    results = run_compare(spec)
    print()
    print(results_table(results))
    if "none" in results["methods"] and len(results["methods"]) > 1:
        print()
        print(paired_table(results))
    if results.get("pending"):
        print()
        print(pending_line(results))
    if len(results["seeds"]) == 1:
        print(
            "\nOne seed: the differences above are one draw of the seed-to-seed noise and cannot tell whether a "
            "method helps (paired intervals need several seeds; the README's headline uses 7: --seeds 7)."
        )
    print(f"\nreport: {spec.output / 'report.md'}")
    return 0
