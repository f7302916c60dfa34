"""``iadet predict``: detect objects in images and draw them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from iadet.cli.common import output_dir, probability
from iadet.engine.distributed import choose_device

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="detect objects in images and draw them",
        description="Writes OUTPUT/<name>.json (boxes in 0-based pixels, labels, class names, scores) and "
        "OUTPUT/<name>.jpg with the detections drawn.",
    )
    p.add_argument(
        "--checkpoint", required=True, action="append", help="repeat it to predict with the ensemble"
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--output", "-o", required=True)
    p.add_argument(
        "--score-thresh", type=probability, default=0.5, help="keep detections scoring at least this (0-1]"
    )
    p.add_argument("--config", default=None, help="config for a bare state dict without config.yaml")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run)


def collect_images(inputs: list[str]) -> list[Path]:
    from iadet.errors import DataError

    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{path}: no images in this directory")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise DataError(f"{path}: no such image or directory")
    return paths


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from iadet.data.files import configure
    from iadet.data.images import load_image
    from iadet.engine.ensemble import load_ensemble
    from iadet.visualization.draw import draw_detections

    out_dir = output_dir(args.output)
    images = collect_images(args.inputs)
    device = choose_device(args.device)
    model, cfg, _ = load_ensemble(args.checkpoint, config=args.config, device=device)
    configure(cfg.data)  # the checkpoint's data.max_image_pixels applies to the images to predict
    classes = cfg.data.classes
    used: set[str] = set()
    for path in images:
        image = load_image(path)
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255)
        with torch.inference_mode():
            out = model([tensor.to(device)])[0]
        keep = out["scores"] >= args.score_thresh
        boxes = out["boxes"][keep].float().cpu().numpy()
        labels = out["labels"][keep].cpu().numpy()
        scores = out["scores"][keep].float().cpu().numpy()
        name = path.stem
        k = 1
        while name in used:
            k += 1
            name = f"{path.stem}_{k}"
        used.add(name)
        detections = [
            {
                "box": [round(float(v), 2) for v in box],
                "label": int(label),
                "class": classes[int(label) - 1],
                "score": float(s),
            }
            for box, label, s in zip(boxes, labels, scores)
        ]
        record = {"image": str(path), "width": image.width, "height": image.height, "detections": detections}
        (out_dir / f"{name}.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        draw_detections(image, boxes, labels, scores, classes).save(out_dir / f"{name}.jpg", quality=92)
        print(f"{path}: {len(detections)} detection(s) -> {out_dir / name}.jpg")
    return 0
