"""``iadet visualize``: attention heat-maps and the IA paper's figures, as PNG files."""

from __future__ import annotations

import argparse
from pathlib import Path

from iadet.cli.common import output_dir, positive_int, probability
from iadet.engine.distributed import choose_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "visualize",
        help="attention heat-maps and the papers' figures",
        description="PNG pictures of where a detector attends on its RoI features (the IA paper's Fig. 1, 2, 5, 6). "
        "Detections are drawn by `iadet predict` (Fig. 7).",
    )
    kinds = p.add_subparsers(dest="picture", metavar="PICTURE", required=True)

    a = kinds.add_parser(
        "attention",
        help="Fig. 1/2: attention heat-maps of detected objects (top IA channels and overall)",
        description="For the detected objects of each image (or the ground-truth objects of a split's images), "
        "the attention M of the RoI features (Eq. 1) over the RoI crop: the channels from which IA removes most "
        "attention and the overall map, with the inverted attention (Eq. 4) of the first checkpoint. "
        "A second checkpoint (e.g. baseline then IA) adds its rows on the same boxes. "
        "Writes OUTPUT/attention_<image>.png.",
    )
    _inputs(a, several=True)
    a.add_argument("--channels", type=positive_int, default=4, help="channels shown per map (default 4)")
    a.add_argument(
        "--label",
        action="append",
        default=None,
        help="a row name per checkpoint, repeatable (default: run directory)",
    )
    a.set_defaults(func=run_attention)

    s = kinds.add_parser(
        "strategies",
        help="Fig. 6: the four inversion strategies (random, overturn, hard, soft) on the same objects",
        description="For the objects of each image: the RoI, its attention M and the spatial inverted attention of "
        "each strategy (1 = kept, 0 = dropped). Writes OUTPUT/strategies_<image>.png.",
    )
    _inputs(s)
    s.add_argument(
        "--spatial-ratio", type=probability, default=1 / 3, help="fraction of cells inverted (1/3)"
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the random strategy")
    s.set_defaults(func=run_strategies)

    d = kinds.add_parser(
        "asdn",
        help="A-Fast-RCNN Fig. 3: the hardest occlusion of ASDN pre-training, the ASDN's heat-map and its sampled mask",
        description="For the objects of each image: the RoI, the sliding-window occlusion that ASDN pre-training "
        "picks for it (the window that lowers the ground-truth probability most), the trained ASDN's heat-map "
        "before thresholding and the mask sampled from it, each with the probability left. Needs a run of "
        "asdn, fixed-asdn or asdn+astn (its checkpoint.pth holds the ASDN). Writes OUTPUT/asdn_<image>.png.",
    )
    _inputs(d)
    d.add_argument("--seed", type=int, default=0, help="seed of the sampled masks")
    d.set_defaults(func=run_asdn)

    e = kinds.add_parser(
        "evolution",
        help="Fig. 5: attention of fixed RoIs over training (train with method.save_attention_every=N)",
        description="Draws the attention snapshots that an IA run recorded with --set method.save_attention_every=N: "
        "one row per RoI, one column per recorded iteration. Writes OUTPUT/evolution.png.",
    )
    e.add_argument("--run", required=True, help="the training run directory (or its checkpoint.pth)")
    e.add_argument("--output", "-o", required=True, help="directory for the PNG")
    e.add_argument("--columns", type=positive_int, default=8, help="at most this many iterations (default 8)")
    e.add_argument("--size", type=positive_int, default=96, help="tile size in pixels (default 96)")
    e.set_defaults(func=run_evolution)


def _inputs(p: argparse.ArgumentParser, several: bool = False) -> None:
    if several:
        p.add_argument(
            "--checkpoint",
            action="append",
            required=True,
            metavar="CKPT",
            help="repeat for side-by-side rows: --checkpoint baseline.pth --checkpoint ia.pth",
        )
    else:
        p.add_argument("--checkpoint", required=True)
    p.add_argument("inputs", nargs="*", metavar="IMAGE_OR_DIR", help="images (or --split)")
    p.add_argument("--split", default=None, help="take images and ground-truth objects from this split")
    p.add_argument(
        "--data", default=None, help="with --split: the dataset (default: the checkpoint's data.root)"
    )
    p.add_argument("--max-images", type=positive_int, default=2, help="with --split: first N images (2)")
    p.add_argument("--objects", type=positive_int, default=3, help="objects per image (default 3)")
    p.add_argument(
        "--score-thresh", type=probability, default=0.5, help="detections scoring at least this (default 0.5)"
    )
    p.add_argument("--size", type=positive_int, default=112, help="tile size in pixels (default 112)")
    p.add_argument("--config", default=None, help="config for a bare state dict without config.yaml")
    p.add_argument("--device", default=None)
    p.add_argument("--output", "-o", required=True, help="directory for the PNG files")


def _items(args: argparse.Namespace, model, cfg):
    """``(name, image uint8 HxWx3, boxes, labels, scores | None)`` per picture to draw."""
    import numpy as np
    import torch

    from iadet.cli.predict import collect_images
    from iadet.data.images import load_image
    from iadet.errors import ConfigError, DataError
    from iadet.visualization.attention import detect

    if bool(args.inputs) == bool(args.split):
        raise ConfigError("give images (or directories) or --split, not both and not neither")
    if args.split:
        from iadet.data.catalog import data_root, open_split

        root = Path(args.data) if args.data else data_root(cfg.data)
        split = open_split(root, args.split, fmt=cfg.data.format, classes=cfg.data.classes)
        records = [r for r in split.records if len(r.boxes)][: args.max_images]
        if not records:
            raise DataError(f"split {args.split} of {root} has no image with objects")
        for r in records:
            keep = np.arange(len(r.boxes))[: args.objects]
            image = np.asarray(load_image(r.path))
            yield (
                r.image_id,
                image,
                torch.from_numpy(r.boxes[keep]).float(),
                torch.from_numpy(r.labels[keep]),
                None,
            )
        return
    if getattr(model, "needs_proposals", False):
        raise ConfigError(
            f"{args.checkpoint if isinstance(args.checkpoint, str) else args.checkpoint[0]} is a Fast R-CNN "
            "detector without proposals for arbitrary images: use --split (its ground-truth objects)"
        )
    device = next(model.parameters()).device
    for path in collect_images(args.inputs):
        image = np.asarray(load_image(path))
        tensor = torch.from_numpy(image.copy()).permute(2, 0, 1).float().div(255).to(device)
        boxes, labels, scores = detect(
            model, tensor, score_thresh=args.score_thresh, max_objects=args.objects
        )
        if len(boxes) == 0:
            raise DataError(f"{path}: no detection scores {args.score_thresh} or more; lower --score-thresh")
        yield path.stem, image, boxes, labels, scores


def _save(picture, out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    picture.save(path)
    print(f"{path} ({picture.width}x{picture.height})")
    return path


def run_attention(args: argparse.Namespace) -> int:
    from iadet.cli.robustness import checkpoint_labels
    from iadet.engine.loading import load_detector
    from iadet.errors import ConfigError
    from iadet.visualization.figures import attention_figure

    output_dir(args.output)
    if len(args.checkpoint) > 4:
        raise ConfigError("visualize attention takes at most 4 checkpoints")
    device = choose_device(args.device)
    loaded = [load_detector(c, config=args.config, device=device) for c in args.checkpoint]
    classes = loaded[0][1].data.classes
    for _, cfg in loaded[1:]:
        if list(cfg.data.classes) != list(classes):
            raise ConfigError("the checkpoints have different classes; their attention cannot share boxes")
    labels = checkpoint_labels(args.checkpoint, args.label)
    models = [(label, model) for label, (model, _) in zip(labels, loaded)]
    for name, image, boxes, obj_labels, scores in _items(args, loaded[0][0], loaded[0][1]):
        picture = attention_figure(
            image, boxes, obj_labels, models, classes, scores=scores, channels=args.channels, tile=args.size
        )
        _save(picture, Path(args.output), f"attention_{name}.png")
    return 0


def run_strategies(args: argparse.Namespace) -> int:
    from iadet.engine.loading import load_detector
    from iadet.visualization.figures import strategies_figure

    output_dir(args.output)
    device = choose_device(args.device)
    model, cfg = load_detector(args.checkpoint, config=args.config, device=device)
    for name, image, boxes, labels, _ in _items(args, model, cfg):
        picture = strategies_figure(
            image,
            boxes,
            labels,
            model,
            cfg.data.classes,
            tile=args.size,
            spatial_ratio=args.spatial_ratio,
            seed=args.seed,
        )
        _save(picture, Path(args.output), f"strategies_{name}.png")
    return 0


def run_asdn(args: argparse.Namespace) -> int:
    from iadet.engine.loading import load_detector
    from iadet.visualization.asdn import asdn_figure, load_adversary

    output_dir(args.output)
    device = choose_device(args.device)
    model, cfg = load_detector(args.checkpoint, config=args.config, device=device)
    method = load_adversary(args.checkpoint, model, cfg)
    for name, image, boxes, labels, _ in _items(args, model, cfg):
        picture = asdn_figure(
            image, boxes, labels, model, method, cfg.data.classes, tile=args.size, seed=args.seed
        )
        _save(picture, Path(args.output), f"asdn_{name}.png")
    return 0


def run_evolution(args: argparse.Namespace) -> int:
    from iadet.engine.checkpoint import is_training_checkpoint, load_file, method_section
    from iadet.errors import CheckpointError
    from iadet.visualization.figures import evolution_figure

    output_dir(args.output)
    path = Path(args.run)
    if path.is_dir():
        path = path / "checkpoint.pth"
    state = load_file(path)
    if not is_training_checkpoint(state):
        raise CheckpointError(f"{path}: not a training checkpoint (evolution needs the run's checkpoint.pth)")
    extra = method_section(state).get("extra") or {}
    recorded = extra.get("attention_evolution")
    if not recorded or not recorded.get("snapshots"):
        raise CheckpointError(
            f"{path} holds no attention snapshots: train an ia/ia-code run with --set method.save_attention_every=N"
        )
    picture = evolution_figure(recorded, state.get("classes") or [], tile=args.size, max_columns=args.columns)
    _save(picture, Path(args.output), "evolution.png")
    return 0
