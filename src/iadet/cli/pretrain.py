"""``iadet pretrain``: train a backbone as an image classifier on the built-in task (the ImageNet stand-in)."""

from __future__ import annotations

import argparse

from iadet.cli.common import output_dir, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from iadet.pretraining import PRETRAINABLE, PretrainConfig

    default = PretrainConfig()
    p = sub.add_parser(
        "pretrain",
        help="pretrain a backbone as an image classifier on the built-in task (the ImageNet stand-in)",
        description="Train a backbone as a 58-class image classifier on the built-in classification task "
        "(digits, materials and silhouettes; no detection class is a label) and write DIR/backbone.pth, "
        "loadable with --set model.backbone_weights=DIR/backbone.pth, and DIR/pretrain.json (config, "
        "fingerprint, top-1 on the held-out split per epoch, time). Reproducible bit for bit from --seed "
        "on CPU. With every default, these are the weights model.backbone_weights=builtin names.",
    )
    p.add_argument("--backbone", default="tiny", help=f"one of: {', '.join(PRETRAINABLE)} (default tiny)")
    p.add_argument("--output", "-o", required=True, metavar="DIR")
    p.add_argument("--seed", type=int, default=default.seed)
    p.add_argument("--epochs", type=positive_int, default=default.epochs)
    p.add_argument("--train-images", type=positive_int, default=default.train_images)
    p.add_argument("--val-images", type=positive_int, default=default.val_images)
    p.add_argument("--batch-size", type=positive_int, default=default.batch_size)
    p.add_argument("--lr", type=positive_float, default=default.lr)
    p.add_argument("--warmup-iters", type=int, default=default.warmup_iters)
    p.add_argument("--threads", type=positive_int, default=default.threads,
                   help="torch threads, part of the recipe (default %(default)s)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iadet.modeling import backbones
    from iadet.pretraining import PRETRAINABLE, PretrainConfig, pretrain

    cfg = PretrainConfig(
        backbone=args.backbone,
        seed=args.seed,
        train_images=args.train_images,
        val_images=args.val_images,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_iters=args.warmup_iters,
        threads=args.threads,
    )
    cfg.validate()
    out = output_dir(args.output)
    trunk = getattr(backbones, PRETRAINABLE[cfg.backbone])()
    _, record = pretrain(trunk, cfg, out)
    print(
        f"val top-1 {100 * record['val_top1']:.1f}% after {record['iterations']} iterations "
        f"in {record['seconds']:.0f} s; fingerprint {record['fingerprint']}"
    )
    print(f"wrote {out / 'backbone.pth'} and {out / 'pretrain.json'}")
    print(f"use it: --set model.backbone=tiny --set model.backbone_weights={out / 'backbone.pth'}")
    if cfg == PretrainConfig(backbone=cfg.backbone):
        print("(these are the weights model.backbone_weights=builtin names)")
    return 0
