#!/usr/bin/env bash
# Protocol version 2 (docs/benchmark-protocol.md): blur, noise and the other corruptions in the papers' regime.
# For each detector x seed: retrain it with version 1's config (iadet compare, finetune preset), check that it
# reproduces the committed eval_test.json exactly, then the 15 corruptions x 5 severities on `test` in COCO AP and
# VOC07 mAP over one cache of corrupted images. Resumable: a finished cell (its JSON under
# benchmarks/results/corruption-v2/) is skipped; commit that directory after each batch.
#   METHODS=none SEEDS="0 1" bash benchmarks/corruption_v2.sh     # a batch
#   bash benchmarks/corruption_v2.sh                              # all 25 runs
set -euo pipefail
cd "$(dirname "$0")/.."
IADET=${IADET:-.venv/bin/iadet}
PY=${PY:-.venv/bin/python}
WORK=${WORK:-runs/corruption-v2}                 # weights and the image cache (not committed)
OUT=benchmarks/results/corruption-v2
METHODS=${METHODS:-none,ia,ia-code,ia:strategy=random,cutout}
SEEDS=${SEEDS:-0 1 2 3 4}
mkdir -p "$WORK" "$OUT"
for method in ${METHODS//,/ }; do
  dir=${method//:/-}                             # compare's run directory name (ia:strategy=random -> ia-strategy=random)
  for seed in $SEEDS; do
    run="$WORK/train/runs/$dir/seed$seed"
    result="$OUT/$dir/seed$seed"
    if [[ -f "$result/coco.json" && -f "$result/voc07.json" ]]; then continue; fi
    "$IADET" compare --preset finetune --methods "$method" --seeds "$seed," --output "$WORK/train" --quiet
    "$PY" - "$run/eval_test.json" "benchmarks/results/finetune/runs/$dir/seed$seed/eval_test.json" <<'PYEOF'
import json, sys
new, committed = (json.load(open(p)) for p in sys.argv[1:])
keys = ("mAP", "ap", "npos", "metrics", "errors")
diff = [k for k in keys if new.get(k) != committed.get(k)]
if diff:
    sys.exit(f"iadet: error: {sys.argv[1]} does not reproduce {sys.argv[2]} ({', '.join(diff)}): not used")
PYEOF
    mkdir -p "$result"
    for metric in coco voc07; do
      "$IADET" robustness --checkpoint "$run/model_final.pth" --split test --corruptions benchmark --seed 0 \
          --metric "$metric" --cache "$WORK/cache" --output "$WORK/robustness/$dir/seed$seed/$metric" --quiet
      cp "$WORK/robustness/$dir/seed$seed/$metric/robustness.json" "$result/$metric.json"
    done
    echo "done: $method seed $seed"
  done
done
