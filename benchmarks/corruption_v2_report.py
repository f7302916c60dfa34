"""Protocol versions 2 and 3 (docs/benchmark-protocol.md): the corruption benchmark's analysis, as pre-registered.

    python benchmarks/corruption_v2_report.py [benchmarks/results/corruption-v2]

Reads every finished run of ``benchmarks/corruption_v2.sh`` (``<method>/seed<k>/{clean,coco,voc07}.json``) and
writes, beside them, ``report.md``, ``summary.json`` and ``contrasts.png`` (per family, each contrast's paired
difference with its 95% interval) and ``severity.png`` (mean COCO AP against severity per family and method).
No training, no evaluation: it can run at any time, on whatever has finished.

Each contrast pairs its two detectors by seed over the seeds both have finished (``n`` says how many; the runs go
seed-major, the three detectors of the primary contrasts first). Contrasts, each paired by seed with a 95% Student-t interval: every method - ``none``, and ``ia`` -
``ia:strategy=random``; on mPC, rPC, each family's mPC (Holm-adjusted over the 4 families within a contrast) and
each corruption's mean over severities; for COCO AP (primary) and VOC07 mAP. The verdict is the protocol's:
on the blur and the noise family's mPC (COCO AP), IA "improves" robustness when both ``ia - none`` and ``ia -
ia:strategy=random`` exclude 0 upwards, "hurts" when ``ia - none`` excludes 0 downwards, else "not shown".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from iadet.comparison.plots import Interval, draw_intervals, method_colours
from iadet.comparison.report import interval_cell
from iadet.comparison.stats import holm_adjusted, paired_difference, summarize, t_half_width
from iadet.plotting import new_figure, save_figure
from iadet.robustness.corruptions import BENCHMARK, GROUPS, SEVERITIES

METHODS = ("none", "ia", "ia-code", "ia:strategy=random", "cutout")
CONTRASTS = (
    ("ia", "none"),
    ("ia-code", "none"),
    ("ia:strategy=random", "none"),
    ("cutout", "none"),
    ("ia", "ia:strategy=random"),
)
METRICS = {"coco": "COCO AP", "voc07": "VOC07 mAP"}
PRIMARY_FAMILIES = ("blur", "noise")


def run_dir(method: str) -> str:
    """The directory name of a method in the results (``ia:strategy=random`` -> ``ia-strategy=random``)."""
    return method.replace(":", "-")


def load_runs(root: Path) -> tuple[dict[str, dict[int, dict[str, Any]]], list[dict[str, Any]]]:
    """The finished runs, ``{method: {seed: {"clean": ..., "coco": ..., "voc07": ...}}}``, and the rejected ones:
    retrained runs whose clean COCO AP fell outside the sanity range (protocol 3), reported and never used, as
    ``{"method", "seed", "retrained", "committed", "sane_range_AP"}``."""
    runs: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in METHODS}
    rejected: list[dict[str, Any]] = []
    for method in METHODS:
        for clean_file in sorted((root / run_dir(method)).glob("seed*/clean.json")):
            seed, clean = int(clean_file.parent.name[4:]), json.loads(clean_file.read_text())
            if not clean.get("sane"):
                keep = ("retrained", "committed", "sane_range_AP")
                rejected.append({"method": method, "seed": seed, **{k: clean[k] for k in keep}})
                continue
            files = {metric: clean_file.with_name(f"{metric}.json") for metric in METRICS}
            if not all(f.is_file() for f in files.values()):
                continue
            entry = {"clean": clean, **{metric: json.loads(f.read_text()) for metric, f in files.items()}}
            if all(entry[metric].get("complete") for metric in METRICS):
                runs[method][seed] = entry
    return runs, rejected


def rejected_rows(rejected: list[dict[str, Any]]) -> list[str]:
    """Markdown: each rejected run's clean COCO AP beside the committed run's and the range it missed."""
    lines = [
        "| method | seed | retrained clean AP (%) | committed clean AP (%) | sanity range (%) |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rejected:
        low, high = (100 * v for v in r["sane_range_AP"])
        lines.append(
            f"| {r['method']} | {r['seed']} | {100 * r['retrained']['AP']:.2f} | {100 * r['committed']['AP']:.2f} | "
            f"{low:.2f}-{high:.2f} |"
        )
    return lines


def complete_seeds(runs: dict[str, dict[int, Any]]) -> list[int]:
    """Seeds that every method has finished: the paired set."""
    sets = [set(by_seed) for by_seed in runs.values()]
    return sorted(set.intersection(*sets)) if sets else []


def measures(result: dict[str, Any]) -> dict[str, float]:
    """One run's numbers under one metric: P, mPC, rPC, each family's mPC, each corruption's mean over severities
    and each severity's mean over corruptions."""
    out = {"P": result["P"], "mPC": result["mPC"], "rPC": result["rPC"]}
    out |= {f"family:{family}": value for family, value in result["groups"].items() if family in GROUPS}
    for name, row in result["corruptions"].items():
        out[f"corruption:{name}"] = sum(row.values()) / len(row)
    for severity in SEVERITIES:
        cells = [row[str(severity)] for row in result["corruptions"].values()]
        out[f"severity:{severity}"] = sum(cells) / len(cells)
    return out


def common_seeds(runs: dict, a: str, b: str) -> list[int]:
    """The seeds both ``a`` and ``b`` have finished: a contrast's pairs."""
    return sorted(set(runs[a]) & set(runs[b]))


def contrast_table(runs: dict, metric: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"a - b": {measure: paired difference (+ "holm_p" for families)}}``, each over its common seeds
    (contrasts without two common seeds are left out)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for a, b in CONTRASTS:
        seeds = common_seeds(runs, a, b)
        if not seeds:
            continue
        va = [measures(runs[a][s][metric]) for s in seeds]
        vb = [measures(runs[b][s][metric]) for s in seeds]
        rows = {k: paired_difference([v[k] for v in va], [v[k] for v in vb]).to_json() for k in va[0]}
        families = [k for k in rows if k.startswith("family:")]
        for k, p in zip(families, holm_adjusted([rows[k]["p_value"] for k in families])):
            rows[k]["holm_p"] = p
        out[f"{a} - {b}"] = {**rows, "seeds": seeds}  # type: ignore[dict-item]
    return out


def verdicts(contrasts: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    """The protocol's reading of the primary families (COCO AP contrasts)."""
    out = {}
    for family in PRIMARY_FAMILIES:
        key = f"family:{family}"
        if "ia - none" not in contrasts or "ia - ia:strategy=random" not in contrasts:
            out[family] = "not measurable (the primary contrasts have no common seed yet)"
            continue
        vs_none, vs_random = contrasts["ia - none"][key], contrasts["ia - ia:strategy=random"][key]
        if vs_none["ci_low"] is None or vs_random["ci_low"] is None:
            out[family] = "not measurable (fewer than 2 seeds)"
        elif vs_none["ci_low"] > 0 and vs_random["ci_low"] > 0:
            out[family] = "IA improves robustness"
        elif vs_none["ci_high"] < 0:
            out[family] = "IA hurts robustness"
        else:
            out[family] = "not shown"
    return out


def sanity_rows(runs: dict) -> list[str]:
    """Markdown: per method, the retrained runs' clean COCO AP beside the committed runs' (protocol 3)."""
    lines = [
        "| method | seeds | retrained clean AP (%) | committed clean AP (%) | mean difference | largest difference | "
        "all within the sanity range |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in METHODS:
        by_seed = runs[method]
        if not by_seed:
            lines.append(f"| {method} | 0 | | | | | |")
            continue
        new = [100 * e["clean"]["retrained"]["AP"] for e in by_seed.values()]
        old = [100 * e["clean"]["committed"]["AP"] for e in by_seed.values()]
        diffs = [a - b for a, b in zip(new, old)]
        sane = all(e["clean"]["sane"] for e in by_seed.values())
        lines.append(
            f"| {method} | {', '.join(map(str, by_seed))} | {summarize(new).mean:.2f} | {summarize(old).mean:.2f} | "
            f"{sum(diffs) / len(diffs):+.2f} | {max(diffs, key=abs):+.2f} | {'yes' if sane else 'NO'} |"
        )
    return lines


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def contrast_rows(contrasts: dict, keys: list[str], holm: bool = False) -> list[str]:
    head = "| contrast | seeds | " + " | ".join(k.split(":")[-1] for k in keys) + " |"
    lines = [head, "|---|---|" + "---|" * len(keys)]
    for name, rows in contrasts.items():
        cells = []
        for k in keys:
            cell = interval_cell(rows[k])
            if holm:
                cell += f" (Holm p {_p(rows[k].get('holm_p'))})"
            cells.append(cell)
        lines.append(f"| {name} | {len(rows['seeds'])} | " + " | ".join(cells) + " |")
    return lines


def mean_rows(runs: dict, metric: str) -> list[str]:
    """Markdown: per detector, over its finished seeds, the mean and 95% interval of P, mPC, rPC and the families."""
    keys = ["P", "mPC", "rPC", *(f"family:{f}" for f in GROUPS)]
    lines = [
        "| method | seeds | " + " | ".join(k.split(":")[-1] for k in keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for m in METHODS:
        if not runs[m]:
            continue
        per_run = [measures(result[metric]) for result in runs[m].values()]
        cells = []
        for k in keys:
            s = summarize([values[k] for values in per_run])
            half = t_half_width(s.std, len(runs[m]))
            cells.append(f"{100 * s.mean:.1f}" + ("" if half is None else f" ± {100 * half:.1f}"))
        lines.append(f"| {m} | {len(runs[m])} | " + " | ".join(cells) + " |")
    return lines


def plot_contrasts(contrasts: dict, output: Path) -> Path:
    """One panel per family (and mPC): each contrast's paired difference (COCO AP points) with its interval."""
    panels = ["mPC", *(f"family:{f}" for f in GROUPS)]
    colours = method_colours([a for a, _ in CONTRASTS])
    fig = new_figure(13.0, 3.9, dpi=110)
    axes = fig.subplots(1, len(panels))  # not sharey: the first panel alone keeps its row labels
    for k, (ax, key) in enumerate(zip(axes, panels)):
        groups: dict[str, list[Interval]] = {"vs none": [], "vs IA's random control": []}
        for name, rows in contrasts.items():
            d = rows[key]
            name = f"{name} (n={len(rows['seeds'])})"
            low = None if d["ci_low"] is None else 100 * d["ci_low"]
            high = None if d["ci_high"] is None else 100 * d["ci_high"]
            group = "vs none" if " - none " in name else "vs IA's random control"
            groups[group].append(
                Interval(name.split(" - ")[0] + name[name.index(" (") :], 100 * d["mean"], low, high)
            )
        draw_intervals(ax, groups, colours, labels=k == 0)
        ax.set_title(key.split(":")[-1] + (" (primary)" if key.split(":")[-1] in PRIMARY_FAMILIES else ""))
        ax.set_xlabel("Δ COCO AP (points)")
    fig.text(
        0.5,
        0.01,
        "Paired by seed, mean and 95% Student-t interval; filled, thick: the interval excludes 0 (not adjusted for "
        "the 4 families: the report gives Holm's p); (primary): the families of the pre-registered verdict",
        ha="center",
        va="bottom",
        fontsize=8.5,
        color="0.25",
    )
    fig.subplots_adjust(left=0.17, right=0.99, bottom=0.22, top=0.88, wspace=0.1)
    return save_figure(fig, output)


def plot_severity(runs: dict, output: Path) -> Path:
    """Per family, the mean COCO AP over each detector's finished seeds and the family's corruptions against
    severity (0: clean)."""
    colours = method_colours(list(METHODS))
    fig = new_figure(13.0, 3.8, dpi=110)
    axes = fig.subplots(1, len(GROUPS), sharey=True)
    for ax, (family, members) in zip(axes, GROUPS.items()):
        for m in (m for m in METHODS if runs[m]):
            seeds = list(runs[m])
            curve = [sum(runs[m][s]["coco"]["P"] for s in seeds) / len(seeds)]
            for severity in SEVERITIES:
                cells = [runs[m][s]["coco"]["corruptions"][c][str(severity)] for s in seeds for c in members]
                curve.append(sum(cells) / len(cells))
            ax.plot([0, *SEVERITIES], [100 * v for v in curve], marker="o", markersize=3.5,
                    color=colours.get(m, (0.1, 0.1, 0.1, 1.0)), label=f"{m} (n={len(seeds)})")  # fmt: skip
        ax.set_title(family)
        ax.set_xlabel("severity (0: clean)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("COCO AP (%), mean over seeds")
    handles, labels = axes[0].get_legend_handles_labels()  # one legend, below the panels, over no data
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.27, top=0.9, wspace=0.06)
    return save_figure(fig, output)


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path("benchmarks/results/corruption-v2")
    if not root.is_dir():
        raise SystemExit(f"error: {root} is not a directory of corruption_v2.sh results")
    runs, rejected = load_runs(root)
    seeds = complete_seeds(runs)
    lines = [
        "# Corruptions in the papers' regime (protocol versions 2 and 3)",
        "",
        f"Made by `python benchmarks/corruption_v2_report.py {root}` from the runs below (no training).",
        "",
        "## Runs",
        "",
        *sanity_rows(runs),
        "",
        f"Seeds every detector has finished: {', '.join(map(str, seeds)) or 'none yet'}; the protocol asks for "
        "seeds 0-4.",
    ]
    if rejected:
        lines += [
            "",
            "Retrained runs outside the sanity range: reported here, not used in any contrast (protocol 3). Their "
            "contrasts have fewer seeds, and no other seed replaces them.",
            "",
            *rejected_rows(rejected),
        ]
    summary: dict[str, Any] = {
        "complete_seeds": seeds,
        "runs": {m: sorted(r) for m, r in runs.items()},
        "rejected": [{k: r[k] for k in ("method", "seed")} for r in rejected],
    }
    contrasts = {metric: contrast_table(runs, metric) for metric in METRICS}
    if not contrasts["coco"]:
        lines += ["", "No two detectors share a finished seed yet: no contrast can be computed."]
    else:
        summary["contrasts"] = contrasts
        summary["verdicts"] = verdicts(contrasts["coco"])
        primary = [
            contrasts["coco"][c] for c in ("ia - none", "ia - ia:strategy=random") if c in contrasts["coco"]
        ]
        done = len(primary) == 2 and min(len(rows["seeds"]) for rows in primary) >= 5
        partial = (
            " (5 seeds: final)" if done else " **Interim: fewer than the 5 seeds the protocol asks for.**"
        )
        short = [f"{c} ({len(r['seeds'])})" for c, r in contrasts["coco"].items() if len(r["seeds"]) < 5]
        lines += ["", "## The pre-registered result (COCO AP, blur and noise families)" + partial, ""]
        for family, verdict in summary["verdicts"].items():
            parts = [
                f"{c} {interval_cell(contrasts['coco'][c][f'family:{family}'])} over {len(contrasts['coco'][c]['seeds'])} seeds"
                for c in ("ia - none", "ia - ia:strategy=random")
                if c in contrasts["coco"]
            ]
            lines.append(f"- **{family}**: {verdict} ({'; '.join(parts)}; points of mPC)")
        if short:
            lines += [
                "",
                f"Contrasts with fewer than the 5 seeds the protocol asks for (seeds): {', '.join(short)}.",
            ]
        for metric, title in METRICS.items():
            families = [f"family:{f}" for f in GROUPS]
            lines += ["", f"## {title}: means over seeds (95% intervals)", "", *mean_rows(runs, metric)]
            lines += ["", f"## {title}: paired contrasts, mPC and rPC (points)", ""]
            lines += contrast_rows(contrasts[metric], ["mPC", "rPC"])
            lines += ["", f"## {title}: paired contrasts per family (points of mPC)", ""]
            lines += contrast_rows(contrasts[metric], families, holm=True)
            lines += ["", f"## {title}: paired contrasts per corruption (points, mean over severities)", ""]
            lines += contrast_rows(contrasts[metric], [f"corruption:{c}" for c in BENCHMARK])
        plot_contrasts(contrasts["coco"], root / "contrasts.png")
        plot_severity(runs, root / "severity.png")
        lines += ["", "![contrasts](contrasts.png)", "", "![severity](severity.png)"]
    (root / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    primary = contrasts["coco"].get("ia - none", {}).get("seeds", [])
    print(
        f"ia - none over {len(primary)} seed(s), {len(seeds)} finished by every detector -> {root / 'report.md'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
