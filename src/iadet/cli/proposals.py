"""``iadet proposals``: precompute object proposals for Fast R-CNN (``model.detector=fast_rcnn``).

Writes ``{image_id: (K, 4) float32 boxes}`` (0-based ``x1, y1, x2, y2`` pixels of the original
image, best first) as ``.npz`` or pickle, the format ``data.proposals`` reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from iadet.cli.common import positive_int

METHODS = ("selective-search",)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "proposals",
        help="compute external proposals for Fast R-CNN",
        description="Compute selective-search proposals (OpenCV's contrib module) for every image of the "
        "given splits and write them for data.proposals. Selective search takes about a second per VOC image "
        "in fast mode: use --workers.",
    )
    p.add_argument("--method", choices=METHODS, default="selective-search")
    p.add_argument("--data", default=None, help="dataset directory (default: the built-in data)")
    p.add_argument(
        "--split",
        default="trainval+test",
        help="splits to cover, '+'-joined (default trainval+test; a VOCdevkit: VOC2007/trainval+VOC2007/test)",
    )
    p.add_argument("--output", "-o", required=True, help="FILE.npz or FILE.pkl")
    p.add_argument(
        "--mode", choices=["fast", "quality"], default="fast", help="selective-search mode (Fast R-CNN: fast)"
    )
    p.add_argument(
        "--max-proposals", type=positive_int, default=2000, help="boxes kept per image (default 2000)"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the ranking of equal-level regions")
    p.add_argument("--workers", type=positive_int, default=1, help="processes (default 1)")
    p.set_defaults(func=run)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def _propose(job: tuple[str, str, str, int, int]):
    import numpy as np

    from iadet.data.images import load_image
    from iadet.data.proposals import selective_search

    image_id, path, mode, max_proposals, seed = job
    image = np.asarray(load_image(path))
    return image_id, selective_search(image, mode=mode, max_proposals=max_proposals, seed=seed)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from iadet.cli.common import output_file
    from iadet.config.schema import DataConfig
    from iadet.data.catalog import data_root, open_split
    from iadet.data.proposals import save_proposals
    from iadet.errors import ConfigError

    output = Path(args.output)
    if output.suffix.lower() not in (".npz", ".pkl", ".pickle"):
        raise ConfigError(f"--output {output}: write proposals as FILE.npz or FILE.pkl")
    output_file(output)
    split = open_split(data_root(DataConfig(root=args.data)), args.split)
    jobs = [(r.image_id, str(r.path), args.mode, args.max_proposals, args.seed) for r in split.records]
    bar = dict(total=len(jobs), desc="selective search", unit="img", disable=not sys.stderr.isatty())
    boxes = {}
    if args.workers > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(args.workers, initializer=_init_worker) as pool:
            for image_id, found in tqdm(pool.imap(_propose, jobs, chunksize=4), **bar):
                boxes[image_id] = found
    else:
        _init_worker()
        for job in tqdm(jobs, **bar):
            image_id, found = _propose(job)
            boxes[image_id] = found
    save_proposals(boxes, output)
    mean = sum(len(b) for b in boxes.values()) / max(len(boxes), 1)
    print(f"wrote {args.method} proposals for {len(boxes)} images ({mean:.0f} boxes per image) to {output}")
    return 0
