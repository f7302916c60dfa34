"""Do two corruption implementations give the same pixels for the same (image, corruption, severity, seed)?

``dump`` writes what the installed ``iadet.robustness.corruptions.corrupt`` returns for every
corruption, severity and seed on a VOC-size image (scikit-image's ``coffee`` at 500x375) to an
``.npz``; ``compare`` reports, per corruption, in how many cells two dumps are identical and, where
not, how far apart they are (mean and max absolute difference in grey levels, share of pixels that
differ). How the README's comparison of the 1.1.2 shim with imagecorruptions-imaug was made:

    git checkout <commit with the shim> && pip install --no-deps imagecorruptions==1.1.2
    python benchmarks/corruption_equivalence.py dump old.npz
    git checkout <commit after> && pip install --no-deps imagecorruptions-imaug==1.1.5
    python benchmarks/corruption_equivalence.py dump new.npz
    python benchmarks/corruption_equivalence.py compare old.npz new.npz --output result.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from robustness_speed import voc_size_image  # noqa: E402


def dump(path: Path, seeds: int, glass_seeds: int) -> None:
    from iadet.robustness.corruptions import ALL, SEVERITIES, corrupt

    image = voc_size_image()
    arrays = {}
    for name in ALL:
        for severity in SEVERITIES:
            # the 1.1.2 glass_blur takes ~20 s a cell: fewer seeds for it
            for seed in range(glass_seeds if name == "glass_blur" else seeds):
                arrays[f"{name}/{severity}/{seed}"] = corrupt(image, name, severity, seed=seed)
        print(name, file=sys.stderr, flush=True)
    np.savez_compressed(path, **arrays)


def compare(old_path: Path, new_path: Path) -> dict:
    old, new = np.load(old_path), np.load(new_path)
    result: dict = {}
    for key in sorted(set(old.files) & set(new.files)):
        name = key.split("/")[0]
        a, b = old[key].astype(np.int16), new[key].astype(np.int16)
        diff = np.abs(a - b)
        entry = result.setdefault(name, {"cells": 0, "identical": 0, "differing": []})
        entry["cells"] += 1
        if not diff.any():
            entry["identical"] += 1
        else:
            entry["differing"].append(
                {
                    "cell": key,
                    "mean_abs": round(float(diff.mean()), 3),
                    "max_abs": int(diff.max()),
                    "pixels_differing": round(float((diff.max(axis=2) > 0).mean()), 4),
                    "mean_old": round(float(a.mean()), 2),
                    "mean_new": round(float(b.mean()), 2),
                }
            )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("path", type=Path)
    d.add_argument("--seeds", type=int, default=3)
    d.add_argument("--glass-seeds", type=int, default=1)
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    c.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.command == "dump":
        dump(args.path, args.seeds, args.glass_seeds)
        return 0
    result = compare(args.old, args.new)
    for name, entry in result.items():
        line = f"{name:<18} identical {entry['identical']}/{entry['cells']}"
        if entry["differing"]:
            worst = max(entry["differing"], key=lambda e: e["mean_abs"])
            line += (
                f"; worst {worst['cell']}: mean |diff| {worst['mean_abs']}, max {worst['max_abs']}, "
                f"{100 * worst['pixels_differing']:.1f}% of pixels"
            )
        print(line)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
