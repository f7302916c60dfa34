"""``iadet data check``: every problem of a dataset at once, with file names."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from iadet.data.catalog import detect_format, open_split
from iadet.data.images import verify_image
from iadet.errors import DataError


@dataclass
class CheckReport:
    root: Path
    splits: dict[str, int] = field(default_factory=dict)  # split -> images that passed
    objects: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"{self.root}:"]
        for split, n in self.splits.items():
            out.append(f"  split {split}: {n} images passed")
        out.append(f"  {self.objects} objects")
        out.extend(f"  warning: {w}" for w in self.warnings)
        out.extend(f"  problem: {p}" for p in self.problems)
        out.append(f"{len(self.problems)} problem(s)" if self.problems else "no problems found")
        return out


def _splits(root: Path, fmt: str) -> list[str]:
    if fmt == "coco":
        return sorted(
            p.stem.removeprefix("instances_") for p in (root / "annotations").glob("instances_*.json")
        )
    main = root / "ImageSets" / "Main"
    if main.is_dir():
        return sorted(
            p.stem
            for p in main.glob("*.txt")
            if "_" not in p.stem or p.stem in ("test_occluded", "test_erased")
        )
    return sorted(
        f"{d.name}/{p.stem}"
        for d in root.iterdir()
        if (d / "ImageSets" / "Main").is_dir()
        for p in (d / "ImageSets" / "Main").glob("*.txt")
        if "_" not in p.stem
    )


def check_dataset(
    root: Path, splits: list[str] | None = None, classes: list[str] | None = None
) -> CheckReport:
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found")
    fmt = detect_format(root)
    report = CheckReport(root)
    checked: set[Path] = set()
    for split in splits or _splits(root, fmt):
        problems: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                ds = open_split(root, split, fmt=fmt, classes=classes, problems=problems)
            except DataError as exc:
                report.problems.append(str(exc))
                continue
        report.warnings.extend(str(w.message) for w in caught)
        passed = 0
        for record in ds.records:
            if record.path in checked:
                passed += 1
                continue
            checked.add(record.path)
            try:
                verify_image(record.path)
                passed += 1
            except DataError as exc:
                problems.append(str(exc))
            report.objects += len(record.labels)
        report.splits[split] = passed
        report.problems.extend(p for p in problems if p not in report.problems)
    return report
