"""Cost of the corruption benchmark: seconds per VOC-size image for each corruption and severity
through ``iadet.robustness.corruptions.corrupt``, and the projected CPU-hours of full Pascal-C
(the 4,952 VOC07 test images x 15 corruptions x 5 severities).

The image is scikit-image's bundled ``coffee`` photograph resized to 500x375 (a typical VOC image),
so the figures depend on nothing downloaded. Each cell is timed after one untimed call (numba's
first-call compile of ``glass_blur`` is reported separately), over ``--repeats`` seeds, median.

    python benchmarks/robustness_speed.py --output benchmarks/results/robustness_speed/after.json \
        --before benchmarks/results/robustness_speed/before.json

``--before`` prints the figures of an earlier run (e.g. of the previous implementation) next to
this one's, with the speed-up per corruption and for the whole of Pascal-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

PASCAL_C_IMAGES = 4952
"""VOC2007 test images."""
VOC_SIZE = (500, 375)
"""(width, height) of a typical VOC image."""


def voc_size_image() -> np.ndarray:
    """scikit-image's ``coffee`` photo (600x400) resized to 500x375, HxWx3 uint8 RGB."""
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.coffee()).resize(VOC_SIZE, Image.BILINEAR))


def time_cell(image: np.ndarray, name: str, severity: int, repeats: int) -> list[float]:
    from iadet.robustness.corruptions import corrupt

    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        corrupt(image, name, severity, seed=seed)
        times.append(time.perf_counter() - start)
        if times[0] > 2.0:  # a slow cell: one timing is precise enough
            break
    return times


def cache_cost(image: np.ndarray, name: str, severity: int) -> dict[str, float] | None:
    """Seconds to write and to read back one cache entry of this cell, and its size in bytes."""
    import tempfile

    try:
        from iadet.robustness.cache import CorruptionCache, image_digest
    except ImportError:  # before the cache existed
        return None
    from iadet.robustness.corruptions import corrupt

    out = corrupt(image, name, severity, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        cache = CorruptionCache(tmp)
        path = cache.path(image_digest(image), name, severity, 0)
        start = time.perf_counter()
        cache.save(path, out)
        write = time.perf_counter() - start
        start = time.perf_counter()
        path_again = cache.path(image_digest(image), name, severity, 0)  # the key is part of a read
        cache.load(path_again, out.shape)
        read = time.perf_counter() - start
        return {"write": write, "read": read, "bytes": path.stat().st_size}


def measure(names: list[str], severities: list[int], repeats: int) -> dict:
    from iadet.robustness.corruptions import corrupt

    image = voc_size_image()
    out: dict = {"corruptions": {}, "first_call": {}, "cache": {}}
    for name in names:
        start = time.perf_counter()
        corrupt(image, name, severities[0], seed=12345)  # imports, JIT compile, caches
        out["first_call"][name] = time.perf_counter() - start
        cells = {}
        for severity in severities:
            cells[str(severity)] = statistics.median(time_cell(image, name, severity, repeats))
        out["corruptions"][name] = cells
        cost = cache_cost(image, name, severities[len(severities) // 2])
        if cost is not None:
            out["cache"][name] = cost
        print(
            f"  {name:<18} " + " ".join(f"{cells[str(s)]:8.4f}" for s in severities),
            f"(first call {out['first_call'][name]:.2f} s)",
            file=sys.stderr,
            flush=True,
        )
    return out


def mean_cost(cells: dict[str, float]) -> float:
    """Mean seconds per image over the severities measured."""
    return sum(cells.values()) / len(cells)


def cpu_hours(seconds_per_image: float) -> float:
    """One corruption at 5 severities over Pascal-C's images, in CPU-hours."""
    return seconds_per_image * PASCAL_C_IMAGES * 5 / 3600


def report(after: dict, before: dict | None) -> str:
    from iadet.robustness.corruptions import BENCHMARK

    lines = [
        f"seconds per {VOC_SIZE[0]}x{VOC_SIZE[1]} image (mean over severities "
        f"{','.join(next(iter(after['corruptions'].values())).keys())}), "
        f"Pascal-C CPU-hours = s/image x {PASCAL_C_IMAGES} x 5",
        "",
        "| corruption | before s/image | after s/image | speed-up | before CPU-h | after CPU-h |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    totals = {"before": 0.0, "after": 0.0}
    complete = True
    for name, cells in after["corruptions"].items():
        now = mean_cost(cells)
        then = mean_cost(before["corruptions"][name]) if before and name in before["corruptions"] else None
        in_pascal_c = name in BENCHMARK
        if in_pascal_c:
            totals["after"] += cpu_hours(now)
            if then is None:
                complete = False
            else:
                totals["before"] += cpu_hours(then)
        lines.append(
            f"| `{name}`{'' if in_pascal_c else ' (extra)'} | {'' if then is None else f'{then:.4f}'} | "
            f"{now:.4f} | {'' if then is None else f'{then / now:.1f}x'} | "
            f"{'' if then is None else f'{cpu_hours(then):.2f}'} | {cpu_hours(now):.2f} |"
        )
    measured = [n for n in BENCHMARK if n in after["corruptions"]]
    lines.append("")
    lines.append(
        f"Pascal-C ({len(measured)} of the 15 benchmark corruptions measured): "
        f"after {totals['after']:.1f} CPU-hours"
        + (
            f", before {totals['before']:.1f} CPU-hours, {totals['before'] / totals['after']:.1f}x less"
            if before and complete
            else ""
        )
    )
    if after.get("cache"):
        cache = after["cache"]
        read = statistics.mean(c["read"] for c in cache.values())
        write = statistics.mean(c["write"] for c in cache.values())
        size = statistics.mean(c["bytes"] for c in cache.values())
        pascal_c = [c["bytes"] for n, c in cache.items() if n in BENCHMARK]
        lines.append(
            f"--cache (PNG, one severity per corruption, mean over corruptions): read {read:.4f} s/image, "
            f"write {write:.4f} s/image, {size / 1e3:.0f} kB/image"
            + (
                f"; full Pascal-C would take {statistics.mean(pascal_c) * PASCAL_C_IMAGES * 75 / 1e9:.0f} GB"
                if pascal_c
                else ""
            )
        )
    slow = {k: v for k, v in after["first_call"].items() if v > 1.0}
    if slow:
        lines.append(
            "first calls over 1 s (imports / JIT compile, once per process): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in slow.items())
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from iadet.robustness.corruptions import ALL, resolve_corruptions

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corruptions", default="all", help="as iadet robustness --corruptions (default: all 19)"
    )
    parser.add_argument("--severities", default="1,2,3,4,5")
    parser.add_argument(
        "--repeats", type=int, default=3, help="seeds timed per cell (median; 1 for cells over 2 s)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch/OpenCV/BLAS threads (default 1: one core)"
    )
    parser.add_argument("--output", type=Path, help="write the measurements as JSON")
    parser.add_argument("--before", type=Path, help="JSON of an earlier run to compare with")
    args = parser.parse_args(argv)

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    import cv2

    cv2.setNumThreads(args.threads)
    names = resolve_corruptions(args.corruptions)
    assert set(names) <= set(ALL)
    severities = [int(s) for s in args.severities.split(",")]
    print(
        f"timing {len(names)} corruptions x severities {severities}, {args.repeats} seeds each",
        file=sys.stderr,
    )
    result = measure(names, severities, args.repeats)
    result["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "python": platform.python_version(),
    }
    try:
        from importlib.metadata import PackageNotFoundError, version

        for dist in ("imagecorruptions-imaug", "imagecorruptions"):
            try:
                result["package"] = f"{dist} {version(dist)}"
                break
            except PackageNotFoundError:
                continue
    except ImportError:  # pragma: no cover
        pass
    before = json.loads(args.before.read_text()) if args.before else None
    print(report(result, before))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
