"""``iadet train``: train a detector with a method (baseline, IA, an adversary)."""

from __future__ import annotations

import argparse
from pathlib import Path

from iadet.cli.common import add_config_args, output_dir, overrides_with_data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a detector (baseline, Inverted Attention or an adversary)",
        description="Train a torchvision detector. Without --data, the built-in data is generated once and cached. "
        "Multi-GPU: torchrun --nproc_per_node=N $(which iadet) train ...",
    )
    add_config_args(p)
    p.add_argument("--output", "-o", default=None, help="run directory (default: runs/<config>-<method>)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pth exactly")
    p.add_argument("--force", action="store_true", help="with --resume: accept a config that differs")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or log lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iadet.config import load_config
    from iadet.engine.distributed import cleanup
    from iadet.engine.training_run import train

    overrides = overrides_with_data(args)
    if args.resume and args.output and args.config is None:
        # resuming: the run's own config is the default
        args.config = str(Path(args.output) / "config.yaml")
    config = load_config(args.config, overrides)
    output = output_dir(args.output or f"runs/{Path(args.config or 'default').stem}-{config.method.name}")
    try:
        result = train(config, output, resume=args.resume, force=args.force, quiet=args.quiet)
    finally:
        cleanup()  # the process group train() set up under torchrun, destroyed on success and on error
    return 0 if result.interrupted or result.iterations >= 0 else 1
