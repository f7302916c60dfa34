#!/usr/bin/env bash
# Fix the finetune preset's schedule on the BASELINE and the `val` split only (never `test`):
# the pretrained tiny backbone (model.backbone_weights=builtin) fine-tuned on the 300 `few` images,
# for each candidate length with the lr step at 75% of it; scored on `val` (200 other trainval images)
# and on `few` itself (the training images: the over-fitting gap). Among the lengths within the
# budget of ~3 minutes a run (BUDGET, 1500 iterations on 2 cores), the shortest within 1 point of the
# best val AP (COCO AP@[.5:.95]) is the preset's (docs/benchmark-protocol.md, version 1).
#   bash benchmarks/finetune_schedule.sh            # ~14 min on 2 cores (finished candidates are reused) -> benchmarks/results/finetune-schedule/
set -euo pipefail
cd "$(dirname "$0")/.."
IADET=${IADET:-.venv/bin/iadet}
OUT=${OUT:-benchmarks/results/finetune-schedule}
mkdir -p "$OUT"
for iters in ${ITERS:-600 1000 1500 2000}; do
  step=$(( iters * 3 / 4 ))
  "$IADET" compare --config finetune --methods none --seeds 1 --splits val,few --quiet \
      --set train.max_iters="$iters" --set train.lr_steps="[$step]" \
      --output "runs/finetune-schedule/iters$iters"
  mkdir -p "$OUT/iters$iters"
  cp "runs/finetune-schedule/iters$iters/results.json" "$OUT/iters$iters/results.json"
done
.venv/bin/python - "$OUT" "${BUDGET:-1500}" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = []
for d in sorted(out.glob("iters*"), key=lambda p: int(p.name[5:])):
    r = json.loads((d / "results.json").read_text())["methods"]["none"]["metrics"]
    rows.append((int(d.name[5:]), {s: {k: v["mean"] for k, v in m.items()} for s, m in r.items()}))
lines = ["| iterations | val AP | val AP50 | val VOC07 | few (train) VOC07 | gap VOC07 (few - val) |", "|---|---|---|---|---|---|"]
for n, m in rows:
    lines.append(f"| {n} | {100*m['val']['AP']:.1f} | {100*m['val']['AP50']:.1f} | {100*m['val']['voc07']:.1f} | "
                 f"{100*m['few']['voc07']:.1f} | {100*(m['few']['voc07']-m['val']['voc07']):.1f} |")
budget = int(sys.argv[2])
best = max(m["val"]["AP"] for n, m in rows if n <= budget)
chosen = min(n for n, m in rows if n <= budget and m["val"]["AP"] >= best - 0.01)
lines += ["", f"chosen: {chosen} iterations (within the budget of {budget}, the shortest within 1 point of the "
          f"best val AP there, {100*best:.1f}); longer candidates are reported for information"]
(out / "schedule.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
