"""Soak test of lossless interruption: SIGKILL a training run at many moments, resume it each time, and
check that its final weights are bit-identical to those of an uninterrupted run.

For each method (default: ``asdn+astn`` with the quick preset's 1 loader worker, ``gridmask`` with 2),
on a toy VOC dataset (the one the tests build: 16 training and 8 test images, 96x72 pixels):

1. an uninterrupted reference run (``train.deterministic=true``) gives ``model_final.pth`` and the
   timings the kill moments are drawn from (start-up, the interval between checkpoint writes);
2. the same run is started again in another directory and killed ``--kills`` times with SIGKILL sent
   to its whole process group (the loader workers die with it, as under ``kill -9 -PGID`` or an OOM
   kill); after each kill it is resumed with ``iadet train --resume`` (or started afresh when it died
   before its first ``checkpoint.pth``, which ``--resume`` refuses). The moments are:

   * ``random``: a uniformly random delay after the (re)start, from half the start-up time to the
     start-up time plus three checkpoint intervals (so some land in start-up and data loading);
   * ``checkpoint-write``: while ``checkpoint.pth`` is being written (the second temporary
     ``.checkpoint.pth.*.tmp`` of the segment is seen, then a random 0-20 ms), checked afterwards by
     the temporary file left behind;
   * ``final-eval``: after the segment's ``model_final.pth`` is written and before ``eval.json``,
     a random fraction of the reference's end-of-training evaluation time;

   the last ones are ``final-eval`` kills (a resume of a run killed there replays from the final
   checkpoint and evaluates again); the others are shuffled;
3. after every kill, ``checkpoint.pth`` (when present) must load (:func:`iadet.serialization.load_file`):
   a kill never leaves a corrupt checkpoint;
4. at the end every tensor of ``model_final.pth`` is compared with the reference's (``torch.equal``
   and the largest absolute difference), every entry of the final ``checkpoint.pth`` too (optimiser,
   adversary, RNG states, progress), and ``eval.json``'s metrics; no stale temporary file may remain.

The summary (per method: kills by kind, resumes, fresh restarts, missed kills, max weight difference,
verdict) goes to ``--output``/summary.json and summary.md. ``benchmarks/soak_resume.sh`` runs it.

    python benchmarks/soak_resume.py --kills 20 --output benchmarks/results/soak
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from iadet.errors import IadetError  # noqa: E402
from iadet.serialization import load_file  # noqa: E402

from conftest import make_voc  # noqa: E402

POLL_S = 0.003

# what the soak shortens (the `quick` preset otherwise): toy data, small images, and train.max_iters (40 by
# default, per method: --methods gridmask:2:60)
SHORTENED = [
    "model.min_size=72",
    "model.max_size=96",
    "train.warmup_iters=5",
    "train.lr_steps=[30]",
    "train.checkpoint_every=2",
    "train.log_every=1",
    "train.deterministic=true",
]


def train_command(
    data: Path, out: Path, method: str, workers: int | None, iters: int, resume: bool
) -> list[str]:
    """The ``iadet train`` command line of one segment."""
    args = [sys.executable, "-m", "iadet", "train", "--config", "quick", "--output", str(out), "--quiet"]
    sets = [f"data.root={data}", f"method.name={method}", f"train.max_iters={iters}", *SHORTENED]
    if workers is not None:
        sets.append(f"data.num_workers={workers}")
    for s in sets:
        args += ["--set", s]
    if resume:
        args.append("--resume")
    return args


def temporaries(out: Path) -> list[str]:
    """Names of the temporary files an interrupted atomic save leaves (``.checkpoint.pth.x1y2.tmp``)."""
    try:
        return [e.name for e in os.scandir(out) if e.name.startswith(".") and e.name.endswith(".tmp")]
    except FileNotFoundError:
        return []


def mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return -1.0


class Segment:
    """One process of a run: started, watched, and killed (its whole process group) or left to end."""

    def __init__(self, cmd: list[str], log: Path) -> None:
        self.log = open(log, "ab")  # noqa: SIM115 (closed in wait())
        self.log.write(f"\n$ {' '.join(cmd)}\n".encode())
        self.log.flush()
        out = Path(cmd[cmd.index("--output") + 1])
        self.final_before = mtime(out / "model_final.pth")  # a previous segment's, if any
        self.start = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, start_new_session=True, cwd=ROOT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> bool:
        """SIGKILL the process group; False when the process had already ended."""
        if not self.alive():
            return False
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def wait(self) -> int:
        code = self.proc.wait()
        self.log.close()
        return code


def reference_run(
    data: Path, out: Path, method: str, workers: int | None, iters: int, log: Path
) -> dict[str, float]:
    """The uninterrupted run, watched for its timings: start-up (to the first checkpoint write),
    the mean interval between checkpoint writes, and the end-of-training evaluation (from
    ``model_final.pth`` to ``eval.json``)."""
    seg = Segment(train_command(data, out, method, workers, iters, resume=False), log)
    writes: list[float] = []
    seen_tmp: set[str] = set()
    final_at = eval_at = None
    while seg.alive():
        for name in temporaries(out):
            if name.startswith(".checkpoint.pth.") and name not in seen_tmp:
                seen_tmp.add(name)
                writes.append(time.time() - seg.start)
        if final_at is None and (out / "model_final.pth").exists():
            final_at = time.time() - seg.start
        if eval_at is None and (out / "eval.json").exists():
            eval_at = time.time() - seg.start
        time.sleep(POLL_S)
    total = time.time() - seg.start
    code = seg.wait()
    if code != 0:
        raise SystemExit(f"the reference run of {method} failed (exit {code}); see {log}")
    startup = writes[0] if writes else total / 2
    interval = (writes[-1] - writes[0]) / (len(writes) - 1) if len(writes) > 1 else total / 10
    final_at = final_at if final_at is not None else total
    eval_at = eval_at if eval_at is not None else total
    return {
        "total_s": total,
        "startup_s": startup,
        "checkpoint_interval_s": interval,
        "checkpoint_writes_seen": len(writes),
        "final_eval_s": max(eval_at - final_at, 0.05),
    }


def kill_segment(seg: Segment, out: Path, kind: str, timing: dict[str, float], rng: random.Random) -> dict:
    """Wait for the moment of a ``kind`` kill, then kill; returns what happened."""
    event: dict[str, Any] = {"kind": kind}
    if kind == "random":
        low = 0.5 * timing["startup_s"]
        high = timing["startup_s"] + 3 * timing["checkpoint_interval_s"]
        delay = rng.uniform(low, high)
        event["delay_s"] = round(delay, 3)
        while seg.alive() and time.time() - seg.start < delay:
            time.sleep(POLL_S)
    elif kind == "checkpoint-write":
        seen: set[str] = set()
        while seg.alive():
            fresh = [n for n in temporaries(out) if n.startswith(".checkpoint.pth.") and n not in seen]
            seen.update(fresh)
            if fresh and len(seen) >= 2:
                time.sleep(rng.uniform(0, 0.02))
                break
            time.sleep(POLL_S / 3)
    elif kind == "final-eval":
        final = out / "model_final.pth"
        while seg.alive() and mtime(final) <= seg.final_before:  # this segment's own model_final.pth
            time.sleep(POLL_S)
        delay = rng.uniform(0, 0.8 * timing["final_eval_s"])
        event["delay_after_final_s"] = round(delay, 3)
        time.sleep(delay)
        event["eval_json_present"] = (out / "eval.json").exists() and mtime(out / "eval.json") >= seg.start
    event["killed"] = seg.kill()
    event["at_s"] = round(time.time() - seg.start, 3)
    event["exit"] = seg.wait()
    if kind == "checkpoint-write":
        event["temporary_left"] = any(n.startswith(".checkpoint.pth.") for n in temporaries(out))
    ckpt = out / "checkpoint.pth"
    if ckpt.exists():
        try:
            state = load_file(ckpt)
            event["checkpoint_iteration"] = int(state["progress"]["iteration"])
            event["checkpoint_loads"] = True
        except IadetError as exc:
            event["checkpoint_loads"] = False
            event["checkpoint_error"] = str(exc)
    else:
        event["checkpoint_loads"] = None
    return event


def compare_weights(a: Path, b: Path) -> dict[str, Any]:
    sa = torch.load(a, map_location="cpu", weights_only=True)
    sb = torch.load(b, map_location="cpu", weights_only=True)
    if sa.keys() != sb.keys():
        return {"identical": False, "max_abs_diff": None, "keys_differ": sorted(set(sa) ^ set(sb))[:5]}
    worst, differing = 0.0, []
    for key in sa:
        x, y = sa[key], sb[key]
        if not torch.equal(x, y):
            differing.append(key)
            if x.is_floating_point() and x.shape == y.shape:
                worst = max(worst, float((x.double() - y.double()).abs().max()))
            else:
                worst = float("inf")
    return {
        "identical": not differing,
        "max_abs_diff": worst,
        "tensors": len(sa),
        "tensors_differing": len(differing),
        "first_differing": differing[:5],
    }


def compare_checkpoints(a: Path, b: Path) -> dict[str, Any]:
    """Every entry of two final ``checkpoint.pth`` (weights, optimiser, adversary, RNG states, progress,
    config): the paths that differ."""
    differing: list[str] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            if set(x) != set(y):
                differing.append(f"{where} (keys)")
                return
            for key in x:
                walk(x[key], y[key], f"{where}.{key}")
        elif isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            if len(x) != len(y):
                differing.append(f"{where} (length)")
                return
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{where}[{i}]")
        elif isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape or not torch.equal(x, y):
                differing.append(where)
        elif x != y and not (x != x and y != y):  # NaN == NaN here
            differing.append(where)

    walk(load_file(a), load_file(b), "checkpoint")
    return {"identical": not differing, "entries_differing": differing[:10]}


def soak(method: str, workers: int | None, iters: int, kills: int, work: Path, seed: int) -> dict[str, Any]:
    """Reference run, then ``kills`` kills with resumes; the method's summary.

    A planned kill that finds the process already ended (its segment finished training) is made up
    by a ``final-eval`` kill of a later resume, so the run is killed ``kills`` times in all.
    """
    rng = random.Random(f"{method}-{seed}")
    data = work / "voc"
    if not data.exists():
        make_voc(data, n_train=16, n_test=8)
    tag = method.replace("+", "_")
    ref, run = work / f"{tag}-reference", work / f"{tag}-killed"
    for d in (ref, run):
        shutil.rmtree(d, ignore_errors=True)
    log = work / f"{tag}.log"
    log.unlink(missing_ok=True)
    started = time.time()
    timing = reference_run(data, ref, method, workers, iters, log)
    print(f"[{method}] reference: {json.dumps({k: round(v, 2) for k, v in timing.items()})}", flush=True)

    n_eval = min(3, kills)
    n_write = min(3, kills - n_eval)
    head = ["checkpoint-write"] * n_write + ["random"] * (kills - n_eval - n_write)
    rng.shuffle(head)
    schedule = head + ["final-eval"] * n_eval
    events, resumes, fresh_starts = [], 0, 0
    finished_early = False
    k = 0
    while schedule and k < 3 * kills:
        kind = schedule.pop(0)
        k += 1
        resume = (run / "checkpoint.pth").exists()
        if k > 1:
            resumes += resume
            fresh_starts += not resume
        seg = Segment(train_command(data, run, method, workers, iters, resume=resume), log)
        event = kill_segment(seg, run, kind, timing, rng)
        event["resumed"] = resume
        events.append(event)
        print(
            f"[{method}] segment {k}, kill {sum(e['killed'] for e in events)}/{kills}: {json.dumps(event)}",
            flush=True,
        )
        if not event["killed"] and event["exit"] != 0:
            raise SystemExit(f"[{method}] segment {k} failed on its own (exit {event['exit']}); see {log}")
        if not event["killed"]:
            finished_early = finished_early or kind != "final-eval"
            schedule.append("final-eval")  # made up by a kill in a later resume's final evaluation
    # the last resume, left to finish
    resume = (run / "checkpoint.pth").exists()
    resumes += resume
    fresh_starts += not resume
    seg = Segment(train_command(data, run, method, workers, iters, resume=resume), log)
    code = seg.wait()
    if code != 0:
        raise SystemExit(f"[{method}] the final resume failed (exit {code}); see {log}")

    weights = compare_weights(ref / "model_final.pth", run / "model_final.pth")
    checkpoint = compare_checkpoints(ref / "checkpoint.pth", run / "checkpoint.pth")
    ev_ref = json.loads((ref / "eval.json").read_text())
    ev_run = json.loads((run / "eval.json").read_text())
    metrics = ("mAP", "AP", "AP50", "AP75")
    same_eval = all(ev_ref.get(m) == ev_run.get(m) for m in metrics)
    by_kind: dict[str, int] = {}
    for e in events:
        if e["killed"]:
            by_kind[e["kind"]] = by_kind.get(e["kind"], 0) + 1
    return {
        "method": method,
        "loader_workers": workers if workers is not None else "quick preset (1)",
        "max_iters": iters,
        "kills": sum(e["killed"] for e in events),
        "kills_by_kind": by_kind,
        "missed_kills": sum(not e["killed"] for e in events),
        "kills_mid_checkpoint_write_confirmed": sum(bool(e.get("temporary_left")) for e in events),
        "kills_in_final_eval_before_eval_json": sum(
            e["kind"] == "final-eval" and e["killed"] and not e.get("eval_json_present") for e in events
        ),
        "resumes": resumes,
        "fresh_starts_before_first_checkpoint": fresh_starts,
        "checkpoint_always_loadable": all(e["checkpoint_loads"] is not False for e in events),
        "finished_before_all_kills": finished_early,
        "stale_temporaries_at_end": temporaries(run),
        "weights": weights,
        "final_checkpoint": checkpoint,
        "eval_metrics_identical": same_eval,
        "eval": {m: [ev_ref.get(m), ev_run.get(m)] for m in metrics if m in ev_ref},
        "reference_timing_s": {k: round(v, 3) for k, v in timing.items()},
        "wall_s": round(time.time() - started, 1),
        "lossless": bool(weights["identical"] and checkpoint["identical"] and same_eval),
        "events": events,
    }


def write_summary(results: list[dict[str, Any]], output: Path, args: argparse.Namespace) -> None:
    output.mkdir(parents=True, exist_ok=True)
    summary = {
        "what": "SIGKILL at random moments, during checkpoint writes and during the final evaluation, "
        "each followed by --resume; final weights compared with an uninterrupted run",
        "command": "bash benchmarks/soak_resume.sh",
        "config": "quick preset + train.max_iters (per method) + "
        + " ".join(SHORTENED)
        + " on a toy VOC set (16 train / 8 test, 96x72)",
        "seed": args.seed,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), nice 19",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "all_lossless": all(r["lossless"] for r in results),
        "methods": results,
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# Soak test: SIGKILL and `--resume` (benchmarks/soak_resume.sh)",
        "",
        f"{summary['date']}, torch {summary['torch']}, {summary['machine']}.",
        f"Config: {summary['config']}.",
        "",
        "| method | loader workers | iterations | kills (random / checkpoint write / final eval) | missed | resumes "
        "| fresh starts | checkpoint always loadable | tensors identical | max abs weight diff | final checkpoint identical "
        "| eval identical |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        k = r["kills_by_kind"]
        w = r["weights"]
        lines.append(
            f"| {r['method']} | {r['loader_workers']} | {r.get('max_iters', 40)} | {r['kills']} ({k.get('random', 0)} / "
            f"{k.get('checkpoint-write', 0)} / {k.get('final-eval', 0)}) | {r['missed_kills']} | {r['resumes']} "
            f"| {r['fresh_starts_before_first_checkpoint']} | {r['checkpoint_always_loadable']} "
            f"| {w.get('tensors', 0) - w.get('tensors_differing', 0)}/{w.get('tensors', 0)} "
            f"| {w['max_abs_diff']} | {r.get('final_checkpoint', {}).get('identical', 'not compared')} "
            f"| {r['eval_metrics_identical']} |"
        )
    lines += [
        "",
        f"Verdict: {'lossless' if summary['all_lossless'] else 'LOSS FOUND'}.",
        "Checkpoint-write kills confirmed by the temporary file left behind: "
        + ", ".join(f"{r['method']} {r['kills_mid_checkpoint_write_confirmed']}" for r in results)
        + ". Final-eval kills before eval.json was written: "
        + ", ".join(f"{r['method']} {r['kills_in_final_eval_before_eval_json']}" for r in results)
        + ".",
        "Per-kill events (moment, exit status, checkpoint iteration after the kill) are in summary.json.",
        "",
    ]
    (output / "summary.md").write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods",
        default="asdn+astn,gridmask:2:60",
        help="method[:workers[:max_iters]],... (default 40 iterations)",
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="runs/soak", help="scratch directory for the runs")
    parser.add_argument("--output", default="benchmarks/results/soak")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="train nothing: add the final-checkpoint comparison to an existing summary.json from --work",
    )
    args = parser.parse_args()
    work = Path(args.work).resolve()
    if args.recheck:
        saved = json.loads((Path(args.output) / "summary.json").read_text())
        for r in saved["methods"]:
            tag = r["method"].replace("+", "_")
            r["final_checkpoint"] = compare_checkpoints(
                work / f"{tag}-reference" / "checkpoint.pth", work / f"{tag}-killed" / "checkpoint.pth"
            )
            r["lossless"] = bool(r["lossless"] and r["final_checkpoint"]["identical"])
        write_summary(saved["methods"], Path(args.output), args)
        return 0 if all(r["lossless"] for r in saved["methods"]) else 1
    work.mkdir(parents=True, exist_ok=True)
    summary = Path(args.output) / "summary.json"
    kept = json.loads(summary.read_text())["methods"] if summary.exists() else []  # other methods' results
    results = []
    for spec in args.methods.split(","):
        method, workers, iters = (spec.split(":") + ["", ""])[:3]
        results.append(
            soak(method, int(workers) if workers else None, int(iters or 40), args.kills, work, args.seed)
        )
        names = {r["method"] for r in results}
        write_summary([r for r in kept if r["method"] not in names] + results, Path(args.output), args)
    print(json.dumps({r["method"]: {"lossless": r["lossless"], **r["weights"]} for r in results}))
    return 0 if all(r["lossless"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
