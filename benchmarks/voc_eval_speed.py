"""Speed of iadet's VOC evaluation against a direct Python port of the devkit's loop.

    .venv/bin/python benchmarks/voc_eval_speed.py [--images 5000] [--dets-per-image 100]

Both sides get the same synthetic data set (random boxes; a third of the detections near a
ground-truth box; 10% of the objects difficult): the reference its devkit structures (1-based
``recs`` and per-class detection arrays, already parsed), iadet the loader-style 0-based
mappings it takes in memory (conversion included in its time). Scores are random float64, so
there are no ties and the reference can sort exactly as py-faster-rcnn does.

This file also holds the reference port used by the tests as an oracle
(:func:`reference_voc_eval`): a plain transcription of the devkit's rules, one detection at a
time, written from the rules in ``iadet.evaluation.voc``'s docstring.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

# --------------------------------------------------------------------------------------------
# Reference: the devkit's voc_eval, one detection at a time
# --------------------------------------------------------------------------------------------


def reference_voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool) -> float:
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = np.max(prec[rec >= t]) if np.sum(rec >= t) > 0 else 0
            ap = ap + p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    changes = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))


def reference_voc_eval(
    recs: dict[str, list[dict]],
    imagenames: list[str],
    classname: str,
    image_ids: list[str],
    confidence: np.ndarray,
    boxes: np.ndarray,
    ovthresh: float = 0.5,
    use_07_metric: bool = True,
    sort_kind: str = "quicksort",
) -> tuple[float, int, np.ndarray, np.ndarray]:
    """AP, npos and the cumulative tp and fp counts (in score order) of one class, as the devkit
    computes them.

    ``recs[imagename]`` is a list of ``{"name", "difficult", "bbox"}`` objects (1-based boxes);
    ``image_ids, confidence, boxes`` are the parsed lines of the class's detection file.
    ``sort_kind="quicksort"`` is py-faster-rcnn's ``np.argsort(-confidence)``; ``"stable"`` breaks
    ties by file order, as the MATLAB devkit (and iadet) do.
    """
    class_recs = {}
    npos = 0
    for name in imagenames:
        objects = [obj for obj in recs[name] if obj["name"] == classname]
        bbox = np.array([obj["bbox"] for obj in objects], dtype=np.float64).reshape(-1, 4)
        difficult = np.array([obj["difficult"] for obj in objects], dtype=bool)
        npos += int(np.sum(~difficult))
        class_recs[name] = {"bbox": bbox, "difficult": difficult, "det": [False] * len(objects)}

    order = np.argsort(-np.asarray(confidence, dtype=np.float64), kind=sort_kind)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[order]
    image_ids = [image_ids[i] for i in order]
    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        rec = class_recs[image_ids[d]]
        bb = boxes[d]
        gt = rec["bbox"]
        ovmax = -np.inf
        if gt.size > 0:
            ixmin = np.maximum(gt[:, 0], bb[0])
            iymin = np.maximum(gt[:, 1], bb[1])
            ixmax = np.minimum(gt[:, 2], bb[2])
            iymax = np.minimum(gt[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
            ih = np.maximum(iymax - iymin + 1.0, 0.0)
            inters = iw * ih
            uni = (
                (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                + (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0)
                - inters
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > ovthresh:
            if not rec["difficult"][jmax]:
                if not rec["det"][jmax]:
                    tp[d] = 1.0
                    rec["det"][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0

    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    if npos == 0 or nd == 0:  # the devkit divides by zero or crashes; iadet's convention: AP 0
        return 0.0, npos, tp, fp
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return reference_voc_ap(rec, prec, use_07_metric), npos, tp, fp


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------


def synthetic_dataset(
    num_images: int, num_classes: int, dets_per_image: int, seed: int = 0
) -> tuple[dict, dict, dict, list]:
    """Random ground truth and detections.

    Returns ``(ground_truth, predictions, recs, per_class)``: the first two 0-based, in iadet's
    in-memory form; ``recs`` and ``per_class[c] = (image_ids, confidence, boxes)`` 1-based, in
    the devkit's form (boxes = 0-based + 1, computed in float64 exactly as iadet does).
    """
    rng = np.random.default_rng(seed)
    ground_truth, predictions, recs = {}, {}, {}
    per_class = [([], [], []) for _ in range(num_classes)]
    for i in range(num_images):
        image_id = f"{i:06d}"
        k = int(rng.integers(1, 6))
        xy = rng.integers(0, 400, size=(k, 2))
        wh = rng.integers(8, 200, size=(k, 2))
        gt_boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float64)
        gt_labels = rng.integers(1, num_classes + 1, size=k)
        difficult = rng.random(k) < 0.1
        ground_truth[image_id] = {"boxes": gt_boxes, "labels": gt_labels, "difficult": difficult}
        recs[image_id] = [
            {"name": f"c{label}", "difficult": bool(d), "bbox": (box + 1.0).tolist()}
            for box, label, d in zip(gt_boxes, gt_labels, difficult)
        ]

        n = dets_per_image
        near = rng.random(n) < 1 / 3
        src = rng.integers(0, k, size=n)
        jitter = rng.normal(0.0, 0.08, size=(n, 4)) * np.concatenate([wh[src], wh[src]], axis=1)
        near_boxes = gt_boxes[src] + jitter
        rxy = rng.uniform(0, 450, size=(n, 2))
        rwh = rng.uniform(5, 200, size=(n, 2))
        boxes = np.where(near[:, None], near_boxes, np.concatenate([rxy, rxy + rwh], axis=1))
        labels = np.where(
            near & (rng.random(n) < 0.9), gt_labels[src], rng.integers(1, num_classes + 1, size=n)
        )
        scores = rng.random(n)
        predictions[image_id] = {"boxes": boxes, "labels": labels, "scores": scores}
        for box, label, score in zip(boxes + 1.0, labels, scores):
            ids, confidence, bbs = per_class[label - 1]
            ids.append(image_id)
            confidence.append(score)
            bbs.append(box)
    per_class = [(ids, np.array(conf), np.array(bbs).reshape(-1, 4)) for ids, conf, bbs in per_class]
    return ground_truth, predictions, recs, per_class


def main() -> None:
    from iadet.evaluation.voc import evaluate_voc

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--dets-per-image", type=int, default=100, help="detections per image, all classes")
    parser.add_argument("--metric", choices=("voc07", "voc"), default="voc07")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="iadet runs; the best time is reported")
    args = parser.parse_args()

    classes = [f"c{c}" for c in range(1, args.classes + 1)]
    ground_truth, predictions, recs, per_class = synthetic_dataset(
        args.images, args.classes, args.dets_per_image, args.seed
    )
    imagenames = list(recs)
    num_dets = sum(len(conf) for _, conf, _ in per_class)
    print(f"{args.images} images, {args.classes} classes, {num_dets} detections, metric {args.metric}")

    start = time.perf_counter()
    reference = [
        reference_voc_eval(recs, imagenames, name, *per_class[c], use_07_metric=args.metric == "voc07")[0]
        for c, name in enumerate(classes)
    ]
    reference_time = time.perf_counter() - start

    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = evaluate_voc(ground_truth, predictions, classes, metric=args.metric)
        times.append(time.perf_counter() - start)
    ours = min(times)
    delta = max(abs(result.ap[name] - ap) for name, ap in zip(classes, reference))
    print(
        f"reference: {reference_time:.2f} s, iadet: {ours:.3f} s, speed-up: {reference_time / ours:.0f}×, "
        f"max |ΔAP| = {delta:g} (mAP {result.map:.4f})"
    )


if __name__ == "__main__":
    main()
