#!/usr/bin/env bash
# Protocol versions 2 and 3 (docs/benchmark-protocol.md): blur, noise and the other corruptions in the papers' regime.
# For each detector x seed: retrain it with version 1's config (iadet compare, finetune preset), check that its clean
# `test` COCO AP is sane (version 3: within its method's committed 7 seeds' range widened by 2 SD), then the 15
# corruptions x 5 severities on `test`, COCO AP and VOC07 from the same detections, over one cache of corrupted
# images. First of all, `none` seed 0 is trained twice and must give identical results (the machine repeats itself).
# Resumable: a finished cell (its JSON under benchmarks/results/corruption-v2/) is skipped; commit that directory
# after each batch.
#   METHODS=none SEEDS="0 1" bash benchmarks/corruption_v2.sh     # a batch
#   bash benchmarks/corruption_v2.sh                              # all 25 runs
#   python benchmarks/corruption_v2_report.py                     # the analysis, from what has finished
set -euo pipefail
cd "$(dirname "$0")/.."
IADET=${IADET:-.venv/bin/iadet}
PY=${PY:-.venv/bin/python}
WORK=${WORK:-runs/corruption-v2}                 # weights and the image cache (not committed)
OUT=benchmarks/results/corruption-v2
METHODS=${METHODS:-none,ia,ia-code,ia:strategy=random,cutout}
SEEDS=${SEEDS:-0 1 2 3 4}
mkdir -p "$WORK" "$OUT"

train() {  # train <method> <seed> <output>: version 1's config, nothing else
  "$IADET" compare --preset finetune --methods "$1" --seeds "$2," --output "$3" --quiet
}

# version 3: the machine must repeat itself before anything is measured
if [[ ! -f "$OUT/determinism.json" ]]; then
  train none 0 "$WORK/train"
  train none 0 "$WORK/determinism"
  "$PY" - "$WORK/train/runs/none/seed0/eval_test.json" "$WORK/determinism/runs/none/seed0/eval_test.json" \
      "$OUT/determinism.json" <<'PYEOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
same = all(a.get(k) == b.get(k) for k in ("mAP", "ap", "npos", "detections", "metrics", "errors"))
if not same:
    sys.exit(f"iadet: error: {sys.argv[1]} and {sys.argv[2]} differ: this machine does not repeat itself (protocol 3)")
json.dump({"run": "none seed 0, trained twice", "identical": True, "metrics": a["metrics"]},
          open(sys.argv[3], "w"), indent=2)
PYEOF
fi

for seed in $SEEDS; do                           # seed-major: every finished seed is a complete paired set
  for method in ${METHODS//,/ }; do
    dir=${method//:/-}                           # compare's run directory name (ia:strategy=random -> ia-strategy=random)
    run="$WORK/train/runs/$dir/seed$seed"
    result="$OUT/$dir/seed$seed"
    if [[ -f "$result/coco.json" && -f "$result/voc07.json" ]]; then continue; fi
    train "$method" "$seed" "$WORK/train"
    mkdir -p "$result"
    "$PY" - "$run/eval_test.json" "benchmarks/results/finetune/runs/$dir" "$seed" "$result/clean.json" <<'PYEOF'
import json, platform, statistics, subprocess, sys
from pathlib import Path
import torch
new = json.load(open(sys.argv[1]))
committed_dir, seed, out = Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
committed = [json.load(open(committed_dir / f"seed{k}" / "eval_test.json"))["metrics"]["AP"] for k in range(7)]
sd = statistics.stdev(committed)
low, high = min(committed) - 2 * sd, max(committed) + 2 * sd
ap = new["metrics"]["AP"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
record = {
    "retrained": new["metrics"],
    "committed": json.load(open(committed_dir / f"seed{seed}" / "eval_test.json"))["metrics"],
    "sane_range_AP": [low, high],
    "sane": low <= ap <= high,
    "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "torch": torch.__version__,
    "cpu": cpu,
}
out.write_text(json.dumps(record, indent=2))
if not record["sane"]:
    sys.exit(f"iadet: error: {sys.argv[1]}: clean COCO AP {100 * ap:.2f} outside {100 * low:.2f}-{100 * high:.2f}: not used (protocol 3)")
PYEOF
    "$IADET" robustness --checkpoint "$run/model_final.pth" --split test --corruptions benchmark --seed 0 \
        --metric coco,voc07 --cache "$WORK/cache" --output "$WORK/robustness/$dir/seed$seed" --quiet
    for metric in coco voc07; do
      cp "$WORK/robustness/$dir/seed$seed/$metric/robustness.json" "$result/$metric.json"
    done
    echo "done: $method seed $seed"
  done
done
