"""``iadet compare``: every method × seed on the same data and schedule, evaluated, summarised.

Layout of the output directory::

    OUTPUT/runs/<method>/seed<k>/      one training run each (config.yaml, metrics.jsonl, model_final.pth)
        eval_<split>.json             VOC07 mAP per split (reused when present)
        robustness.json               corruption summary, when asked
        occlusion.json                occlusion sweep, when asked
    OUTPUT/results.json               {"methods": {m: {"splits": {split: {"mean", "std", "runs"}}, ...}}, "config",
                                       "primary", "pending": {m: [finished seeds]} with --finished-only}
    OUTPUT/report.md                  the primary metric's mean ± std per method and split, paired differences to
                                      `none` with 95% CIs, the smallest detectable effect, then every metric
    OUTPUT/*.png                      forest.png (the headline: paired Δ to `none` with 95% intervals), the primary
                                      metric by split, error types, per-class heat maps (and robustness plots)

Runs that already finished are reused, interrupted ones resumed, so a comparison can be
stopped and continued. The seed sets ``train.seed`` — initialisation, data order, flips and
every sampling draw — and is shared by all methods, which makes the differences paired.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from iadet.comparison.stats import paired_difference, summarize
from iadet.config import Config, config_diff, load_config
from iadet.config.coerce import short_repr
from iadet.data.catalog import data_root, open_from_config
from iadet.engine import distributed as dist
from iadet.engine.inference import evaluate_split, score
from iadet.engine.loading import load_detector
from iadet.engine.training_run import OPERATIONAL_KEYS, train
from iadet.errors import ConfigError, DataError
from iadet.serialization import save_json_atomic

BASELINE = "none"


@dataclass
class CompareSpec:
    methods: list[str]
    seeds: int | list[int]
    """A count (``train.seed``, ``train.seed + 1``, ...) or the training seeds themselves."""
    output: Path
    config: str = "quick"
    overrides: list[str] = field(default_factory=list)
    splits: list[str] | None = None
    corruptions: str | None = None
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    max_images: int | None = None
    occlusion: list[float] | None = None
    parts: bool = False
    """Also each run's part reliance on the built-in data (:mod:`iadet.robustness.part_reliance`)."""
    primary: str = "voc07"
    """The metric of the report's headline tables, one of :data:`METRICS` (declared before running)."""
    finished_only: bool = False
    """Train nothing: assemble the tables from the runs that have finished (here, or committed from another
    machine); a method missing a seed is left out of the tables and listed under ``pending``."""
    device: str | None = None
    quiet: bool = False


def _log(spec: CompareSpec, text: str) -> None:
    if not spec.quiet:
        print(text, flush=True)


def parse_variant(label: str) -> tuple[str, list[str]]:
    """``"ia:strategy=hard:roi_ratio=0.5"`` -> ``("ia", ["method.strategy=hard", "method.roi_ratio=0.5"])``.

    A variant is a method with some of its parameters set, compared as a method of its own
    (the IA paper's Tables 2 and 3 are variants of ``ia``).
    """
    name, *params = label.split(":")
    for p in params:
        if "=" not in p:
            raise ConfigError(f"method variant '{label}': '{p}' is not key=value")
    return name, [f"method.{p}" for p in params]


def run_directory_name(label: str) -> str:
    return label.replace(":", "-").replace("/", "_")


def _run_config(spec: CompareSpec, label: str, seed: int) -> Config:
    name, params = parse_variant(label)
    return load_config(
        spec.config,
        [*spec.overrides, f"method.name={name}", *params, f"train.seed={seed}", "train.eval_at_end=false"],
    )


def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _eval_path(run_dir: Path, split: str) -> Path:
    return run_dir / f"eval_{split.replace('/', '_')}.json"


def read_result(path: Path) -> dict[str, Any]:
    """A run's cached evaluation (``eval_<split>.json``). Result files may come from anyone (a committed
    comparison): a damaged one — not JSON, not an object, a non-finite score — is an error naming it,
    never re-scored or tabulated as it is."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(
            f"{path}: not a readable result file ({type(exc).__name__}); remove it to recompute it"
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a result file (a JSON object with 'mAP'); remove it to recompute it")
    scores = {"mAP": data.get("mAP"), **{f"metrics.{k}": v for k, v in (data.get("metrics") or {}).items()}}
    for key, value in scores.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise DataError(
                f"{path}: {key} is {short_repr(value)}, not a finite number; remove it to recompute it"
            )
    return data


def _check_inside(run_dir: Path, output: Path) -> None:
    """A run directory must be inside the comparison's own directory (no symbolic link out of it)."""
    if run_dir.exists() and not run_dir.resolve().is_relative_to(output.resolve()):
        raise DataError(f"{run_dir}: leads outside {output} (a symbolic link?); refused")


def recorded(run_dir: Path, splits: list[str], parts: bool = False) -> bool:
    """A finished run whose results are all on disk (every split's evaluation with every metric, and its
    part reliance when asked): it is reused without its weights, so committed result files (config.yaml,
    eval_*.json, parts.json; no checkpoints) are enough to assemble a comparison on another machine."""
    for split in splits:
        path = _eval_path(run_dir, split)
        if not path.is_file():
            return False
        cached = read_result(path)
        if "metrics" not in cached or "errors" not in cached:
            return False
    return not parts or (run_dir / "parts.json").is_file()


def _train_or_reuse(spec: CompareSpec, cfg: Config, run_dir: Path, splits: list[str]) -> str:
    final = run_dir / "model_final.pth"
    saved = run_dir / "config.yaml"
    if saved.is_file():
        previous = load_config(str(saved)).to_dict()
        wanted = cfg.to_dict()
        wanted["data"]["classes"] = previous["data"]["classes"]
        diff = [k for k in config_diff(previous, wanted) if k not in OPERATIONAL_KEYS]
        if diff:
            raise ConfigError(
                f"{run_dir} holds a run with a different config ({', '.join(diff)}); "
                "use another --output or remove that run"
            )
    if final.is_file():
        return "reused"
    if saved.is_file() and recorded(run_dir, splits, spec.parts) and not (spec.corruptions or spec.occlusion):
        return "recorded"
    if spec.finished_only:
        return "pending"
    resume = (run_dir / "checkpoint.pth").is_file()
    result = train(cfg, run_dir, resume=resume, quiet=True)
    if result.interrupted:
        raise KeyboardInterrupt
    return "resumed" if resume else "trained"


def _evaluate_run(
    spec: CompareSpec, run_dir: Path, splits: list[str], device: torch.device
) -> dict[str, dict]:
    results = {}
    model = cfg = None
    for split_name in splits:
        path = _eval_path(run_dir, split_name)
        if path.is_file():
            cached = read_result(path)
            if "metrics" in cached and "errors" in cached:  # written by a version that scored all of them
                results[split_name] = cached
                continue
        if model is None:
            model, cfg = load_detector(run_dir / "model_final.pth", device=device)
        split, predictions, result = evaluate_split(
            model, cfg, split_name, device, metric="voc07", progress=not spec.quiet and sys.stdout.isatty()
        )
        result["metrics"] = secondary_metrics(predictions, split, result)
        result["errors"] = error_breakdown(predictions, split)
        save_json_atomic(result, path)
        results[split_name] = result
    return results


PART_KEYS = ("probability", "top_drop", "other_drop", "top_share")
"""Part-reliance summaries aggregated over seeds (each run's mean over its objects)."""

METRICS = ("voc07", "voc", "AP", "AP50", "AP75")
"""Every split's metrics in ``results.json``: VOC07 11-point mAP (the default primary), VOC area mAP, and
COCO's AP@[.5:.95], AP50 and AP75 (pycocotools) — the last ones do not saturate at 90.9 as the
11-point metric does."""


def error_breakdown(predictions: Any, split: Any) -> dict[str, float]:
    """TIDE's dAP of each error type, overall (``iadet analyze errors`` has the per-class detail)."""
    from iadet.evaluation.tide import analyze_errors

    ground_truth = {k: v for k, v in split.ground_truth().items() if k in predictions}
    dap = analyze_errors(ground_truth, predictions, split.classes).breakdown()["dap"]
    return {kind: float(v["overall"]) for kind, v in dap.items()}


def secondary_metrics(predictions: Any, split: Any, voc07: dict[str, Any]) -> dict[str, float]:
    """:data:`METRICS` of one run's predictions on a split (the VOC07 result is passed in)."""
    area = score(predictions, split, "voc")
    coco = score(predictions, split, "coco")
    return {
        "voc07": float(voc07["mAP"]),
        "voc": float(area["mAP"]),
        **{k: float(coco[k]) for k in ("AP", "AP50", "AP75")},
    }


def _parts_run(run_dir: Path, split: str, device: torch.device) -> dict[str, Any]:
    """The run's part-reliance summary on ``split`` (cached in ``parts.json``)."""
    path = run_dir / "parts.json"
    if path.is_file():
        return json.loads(path.read_text())["summary"]
    from iadet.robustness.part_reliance import detector_probabilities, split_reliance, summarize

    model, cfg = load_detector(run_dir / "model_final.pth", device=device)
    rows = split_reliance(cfg, detector_probabilities(model, device), split=split)
    summary = summarize(rows)
    save_json_atomic({"split": split, "summary": summary, "objects": [vars(r) for r in rows]}, path)
    return summary


def _robustness_run(
    spec: CompareSpec, run_dir: Path, split_name: str, device: torch.device
) -> dict[str, Any]:
    """Corruption summary and/or occlusion curve of one run (cached in the run directory)."""
    out: dict[str, Any] = {}
    model = cfg = split = None

    def load():
        nonlocal model, cfg, split
        if model is None:
            model, cfg = load_detector(run_dir / "model_final.pth", device=device)
            split = open_from_config(cfg.data, split_name)

    if spec.corruptions:
        from iadet.robustness.evaluate import corruption_summary

        path = run_dir / "robustness.json"
        if path.is_file():
            out["corruption"] = json.loads(path.read_text())
        else:
            load()
            out["corruption"] = corruption_summary(
                model, split, device, corruptions=spec.corruptions, severities=spec.severities,
                max_images=spec.max_images, progress=not spec.quiet and sys.stdout.isatty(),
            )  # fmt: skip
            save_json_atomic(out["corruption"], path)
    if spec.occlusion:
        from iadet.robustness.evaluate import occlusion_curve

        path = run_dir / "occlusion.json"
        cached = json.loads(path.read_text()) if path.is_file() else None
        if cached and [float(f) for f in cached.get("fractions", [])] == [float(f) for f in spec.occlusion]:
            out["occlusion"] = cached
        else:
            load()
            out["occlusion"] = occlusion_curve(
                model, split, device, fractions=spec.occlusion, max_images=spec.max_images,
                progress=not spec.quiet and sys.stdout.isatty(),
            )  # fmt: skip
            save_json_atomic(out["occlusion"], path)
    return out


def run_compare(spec: CompareSpec) -> dict[str, Any]:
    """Train, evaluate and summarise every method × seed; returns (and writes) ``results.json``."""
    if isinstance(spec.seeds, int) and spec.seeds < 1:
        raise ConfigError(f"--seeds must be a positive integer or a list of seeds, got {spec.seeds}")
    if isinstance(spec.seeds, list) and (not spec.seeds or any(s < 0 for s in spec.seeds)):
        raise ConfigError(f"--seeds: a list of seeds must be non-empty and non-negative, got {spec.seeds}")
    if not spec.methods:
        raise ConfigError("--methods is empty")
    if spec.primary not in METRICS:
        raise ConfigError(f"--primary must be one of {', '.join(METRICS)}, got '{spec.primary}'")
    methods = list(dict.fromkeys(spec.methods))
    base = load_config(spec.config, spec.overrides)
    configs = {m: _run_config(spec, m, base.train.seed) for m in methods}  # validates every method name early
    device = dist.choose_device(spec.device or base.train.device)

    root = data_root(base.data)
    splits = spec.splits or [base.data.test_split]
    if spec.splits is None:  # the built-in data's two kinds of occlusion, always side by side
        for kind in ("occluded", "erased"):
            variant = f"{base.data.test_split}_{kind}"
            if (root / "ImageSets" / "Main" / f"{variant}.txt").is_file():
                splits.append(variant)
    spec.output.mkdir(parents=True, exist_ok=True)

    if isinstance(spec.seeds, int):
        seeds = [base.train.seed + k for k in range(spec.seeds)]
    else:
        seeds = list(dict.fromkeys(spec.seeds))
    runs = [(m, s) for s in seeds for m in methods]
    per_run: dict[tuple[str, int], dict] = {}
    pending: dict[str, list[int]] = {}
    durations: list[float] = []
    for k, (method, seed) in enumerate(runs, 1):
        run_dir = spec.output / "runs" / run_directory_name(method) / f"seed{seed}"
        _check_inside(run_dir, spec.output)
        eta = ""
        if durations:
            eta = f", ETA {_format_eta(sum(durations) / len(durations) * (len(runs) - k + 1))}"
        _log(spec, f"[{k}/{len(runs)}] method={method} seed={seed}{eta}")
        start = time.perf_counter()
        cfg = configs[method] if seed == base.train.seed else _run_config(spec, method, seed)
        status = _train_or_reuse(spec, cfg, run_dir, splits)
        if status == "pending":
            pending.setdefault(method, []).append(seed)
            _log(spec, "      not finished: left out (--finished-only)")
            continue
        evals = _evaluate_run(spec, run_dir, splits, device)
        robust = (
            _robustness_run(spec, run_dir, splits[0], device) if (spec.corruptions or spec.occlusion) else {}
        )
        per_run[(method, seed)] = {"evals": evals, **robust}
        if spec.parts:
            per_run[(method, seed)]["parts"] = _parts_run(run_dir, base.data.test_split, device)
        took = time.perf_counter() - start
        if status not in ("reused", "recorded"):
            durations.append(took)
        _log(spec, f"      {status} in {_format_eta(took)}: {run_scores(evals, spec.primary)}")

    complete = [m for m in methods if m not in pending]
    if not complete:
        raise ConfigError(f"--finished-only: no method has finished all of seeds {seeds} in {spec.output}")
    results = aggregate(complete, seeds, splits, per_run, configs, base)
    results["primary"] = spec.primary
    if pending:
        results["pending"] = {m: [s for s in seeds if s not in pending[m]] for m in methods if m in pending}
    save_json_atomic(results, spec.output / "results.json")
    from iadet.comparison.report import write_report

    write_report(results, spec.output)
    return results


_SCORE_NAMES = {"voc07": "VOC07 mAP", "voc": "VOC area mAP", "AP": "COCO AP", "AP50": "COCO AP50",
                "AP75": "COCO AP75"}  # fmt: skip


def run_scores(evals: dict[str, dict[str, Any]], primary: str) -> str:
    """One run's line: each metric named, the primary first, then VOC07 mAP (the papers' metric), per split in
    percent, e.g. ``COCO AP test 56.1, test_occluded 13.9; VOC07 mAP test 78.3, test_occluded 24.0``."""
    parts = []
    for metric in dict.fromkeys([primary, "voc07"]):
        cells = []
        for split, e in evals.items():
            value = e.get("metrics", {}).get(metric, e.get("mAP") if metric == "voc07" else None)
            if value is not None:
                cells.append(f"{split} {100 * value:.1f}")
        if cells:
            parts.append(f"{_SCORE_NAMES.get(metric, metric)} " + ", ".join(cells))
    return "; ".join(parts)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def aggregate(
    methods: list[str],
    seeds: list[int],
    splits: list[str],
    per_run: dict[tuple[str, int], dict],
    configs: dict[str, Config],
    base: Config,
) -> dict[str, Any]:
    """The ``results.json`` structure from per-run evaluations."""
    out: dict[str, Any] = {"methods": {}, "seeds": seeds, "splits": splits}
    for m in methods:
        entry: dict[str, Any] = {"splits": {}, "per_class": {}, "paired_vs_none": {}}
        for split in splits:
            values = [per_run[(m, s)]["evals"][split]["mAP"] for s in seeds]
            entry["splits"][split] = summarize(values).to_json()
            classes = per_run[(m, seeds[0])]["evals"][split].get("ap", {})
            entry["per_class"][split] = {
                c: summarize([per_run[(m, s)]["evals"][split]["ap"][c] for s in seeds]).to_json()
                for c in classes
            }
            if m != BASELINE and BASELINE in methods:
                base_values = [per_run[(BASELINE, s)]["evals"][split]["mAP"] for s in seeds]
                entry["paired_vs_none"][split] = paired_difference(values, base_values).to_json()
            if all("metrics" in per_run[(m, s)]["evals"][split] for s in seeds):
                entry.setdefault("metrics", {})[split] = {
                    k: summarize([per_run[(m, s)]["evals"][split]["metrics"][k] for s in seeds]).to_json()
                    for k in METRICS
                }
                if m != BASELINE and BASELINE in methods:
                    entry.setdefault("paired_metrics_vs_none", {})[split] = {
                        k: paired_difference(
                            [per_run[(m, s)]["evals"][split]["metrics"][k] for s in seeds],
                            [per_run[(BASELINE, s)]["evals"][split]["metrics"][k] for s in seeds],
                        ).to_json()
                        for k in METRICS
                    }
        for split in splits:
            if all("errors" in per_run[(m, s)]["evals"][split] for s in seeds):
                kinds = per_run[(m, seeds[0])]["evals"][split]["errors"]
                entry.setdefault("errors", {})[split] = {
                    k: summarize([per_run[(m, s)]["evals"][split]["errors"][k] for s in seeds]).to_json()
                    for k in kinds
                }
        if all("parts" in per_run[(m, s)] for s in seeds):
            entry["parts"] = {
                key: summarize([per_run[(m, s)]["parts"][key]["mean"] for s in seeds]).to_json()
                for key in PART_KEYS
                if all(per_run[(m, s)]["parts"].get(key) for s in seeds)
            }
            if (
                m != BASELINE
                and BASELINE in methods
                and all("parts" in per_run[(BASELINE, s)] for s in seeds)
            ):
                entry["paired_parts_vs_none"] = {
                    key: paired_difference(
                        [per_run[(m, s)]["parts"][key]["mean"] for s in seeds],
                        [per_run[(BASELINE, s)]["parts"][key]["mean"] for s in seeds],
                    ).to_json()
                    for key in entry["parts"]
                }
        if any("corruption" in per_run[(m, s)] for s in seeds):
            entry["robustness"] = {
                key: summarize([per_run[(m, s)]["corruption"][key] for s in seeds]).to_json()
                for key in ("P", "mPC", "rPC")
                if all(_nan_to_none(per_run[(m, s)]["corruption"].get(key)) is not None for s in seeds)
            }
            entry["robustness_runs"] = [per_run[(m, s)]["corruption"] for s in seeds]
            if m != BASELINE and BASELINE in methods:
                entry["paired_vs_none"]["mPC"] = paired_difference(
                    [per_run[(m, s)]["corruption"]["mPC"] for s in seeds],
                    [per_run[(BASELINE, s)]["corruption"]["mPC"] for s in seeds],
                ).to_json()
        if any("occlusion" in per_run[(m, s)] for s in seeds):
            curves = [per_run[(m, s)]["occlusion"] for s in seeds]
            fractions = curves[0]["fractions"]
            entry["occlusion"] = {
                "fractions": fractions,
                "mAP": [summarize([c["mAP"][i] for c in curves]).to_json() for i in range(len(fractions))],
            }
        entry["method"] = configs[m].to_dict()["method"]
        out["methods"][m] = entry
    out["config"] = base.to_dict()
    return out
