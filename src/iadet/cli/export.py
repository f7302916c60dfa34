"""``iadet export``: a checkpoint's inference model as ONNX, or as a stock torchvision state dict."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from iadet.cli.common import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint's inference model (ONNX)",
        description="--format onnx: one image (3, H, W) float RGB in [0, 1] in; boxes (image pixels), labels, "
        "scores (and masks) out; checked against PyTorch with ONNX Runtime on one image. --format torchvision: "
        "the bare state dict and OUTPUT.txt with the stock torchvision code it loads into with strict=True.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint.pth or model_final.pth")
    p.add_argument("--format", choices=["onnx", "torchvision"], default="onnx")
    p.add_argument("--output", "-o", required=True)
    p.add_argument("--config", default=None, help="config for a bare state dict without config.yaml")
    p.add_argument("--image", default=None, help="example image for tracing and the check (default: random)")
    p.add_argument(
        "--height", type=positive_int, default=None, help="example height (default: model.min_size)"
    )
    p.add_argument(
        "--width", type=positive_int, default=None, help="example width (default: 4/3 of the height)"
    )
    p.add_argument("--opset", type=positive_int, default=17)
    p.add_argument("--fixed-size", action="store_true", help="fix the input size to the example's")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime parity check")
    p.set_defaults(func=run)


def _example(args: argparse.Namespace, min_size: int):
    import numpy as np
    import torch

    if args.image:
        from iadet.data.images import load_image

        array = np.asarray(load_image(args.image))
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255), array
    height = args.height or min_size
    width = args.width or round(height * 4 / 3)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, height, width, generator=generator)
    return image, (image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def _example_proposals(array):
    """Proposals for exporting and checking a Fast R-CNN: selective search on the example image."""
    import torch

    from iadet.data.proposals import selective_search

    return torch.from_numpy(selective_search(array, max_proposals=300))


def run(args: argparse.Namespace) -> int:
    from iadet.cli.common import output_file
    from iadet.engine.loading import load_detector

    output = output_file(args.output)
    model, cfg = load_detector(args.checkpoint, config=args.config)
    if args.format == "torchvision":
        return _to_torchvision(model, cfg, output)

    from iadet.export import compare_detections, export_onnx, run_onnx, run_torch

    image, array = _example(args, cfg.model.min_size)
    proposals = _example_proposals(array) if getattr(model, "needs_proposals", False) else None
    export_onnx(model, output, image, proposals=proposals, opset=args.opset, dynamic=not args.fixed_size)
    size = f"{image.shape[1]}x{image.shape[2]}"
    print(
        f"wrote {output} ({'fixed ' + size if args.fixed_size else 'dynamic size'} input, opset {args.opset})"
    )
    if args.no_check:
        return 0
    check = compare_detections(run_torch(model, image, proposals), run_onnx(output, image, proposals))
    print(f"onnxruntime vs PyTorch on one {size} image: {json.dumps(check)}")
    if check["unmatched"]:
        print(f"iadet: error: {output}: ONNX Runtime's detections differ from PyTorch's", file=sys.stderr)
        return 1
    return 0


def _to_torchvision(model, cfg, output: Path) -> int:
    from iadet.engine.checkpoint import save_atomic
    from iadet.export import stock_code, stock_detector, uses_frozen_bn
    from iadet.modeling.detector import detector_kwargs

    state = model.state_dict()
    num_classes = len(cfg.data.classes) + 1
    frozen = uses_frozen_bn(state)
    settings = {
        k: v
        for k, v in detector_kwargs(cfg.model).items()
        if k in ("min_size", "max_size") or k.startswith("box_")
    }
    stock = stock_detector(cfg.model.backbone, cfg.model.detector, num_classes, frozen_bn=frozen)
    stock.load_state_dict(state, strict=True)  # the promise, checked before writing
    save_atomic(state, output)
    code = stock_code(
        cfg.model.backbone, cfg.model.detector, num_classes, frozen_bn=frozen, settings=settings
    )
    code = code.replace("'WEIGHTS'", repr(str(output)))
    note = Path(f"{output}.txt")
    note.write_text(
        f"# {output}: {cfg.model.detector} {cfg.model.backbone}, {num_classes - 1} classes "
        f"({', '.join(cfg.data.classes)}); trained with method {cfg.method.name}.\n"
        "# Loads with strict=True into stock torchvision:\n" + code,
        encoding="utf-8",
    )
    print(code, end="")
    print(f"wrote {output} and {note}")
    return 0
