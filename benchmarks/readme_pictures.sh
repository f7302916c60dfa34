#!/usr/bin/env bash
# The README's pictures.
#
# 1. Results plots, redrawn from committed results with nothing trained (about 20 s on 2 CPU cores):
#    - "Does Inverted Attention help?": benchmarks/results/finetune/forest.png, the headline picture, and the rest of
#      that report's figures, by `iadet compare --finished-only` over the committed runs (their eval_*.json and
#      parts.json); the post-hoc control's report (benchmarks/results/finetune-posthoc) the same way;
#    - the from-scratch comparison's report (benchmarks/results/full), from its committed results.json (its runs are
#      not committed);
#    - docs/images/occlusion.png, from the committed sweep benchmarks/results/occlusion_curve.json;
#    - "Under blur and noise": benchmarks/results/corruption-v2/contrasts.png (and severity.png, report.md), by
#      benchmarks/corruption_v2_report.py from the committed per-run corruption results.
# 2. Pictures of trained detectors, only with --checkpoints: they need the seed-0 `none` and `ia` weights of the
#    from-scratch comparison (`bash benchmarks/full_comparison.sh`, ~80 min on 2 cores; weights are not committed)
#    and a quick IA run that records its attention (trained here if missing, ~10 min): attention.png (Fig. 1/2),
#    strategies.png (Fig. 6), evolution.png (Fig. 5), predict.png (Fig. 7), and the occlusion sweep's numbers
#    (benchmarks/results/occlusion_curve.json), which step 1 then draws.
#
#   bash benchmarks/readme_pictures.sh                             # 1: results plots from committed results
#   bash benchmarks/readme_pictures.sh --checkpoints [BENCH_DIR]   # 2, then 1; BENCH_DIR: full_comparison.sh's output
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
IMAGES=docs/images

if [[ "${1:-}" == "--checkpoints" ]]; then
  BENCH=${2:-runs/bench-full}
  NONE=$BENCH/runs/none/seed0/model_final.pth
  IA=$BENCH/runs/ia/seed0/model_final.pth
  DATA=$($PY -c "from iadet.data.catalog import builtin_root; print(builtin_root('full'))")
  TMP=$(mktemp -d)
  # Fig. 1/2: baseline vs IA attention on the occluded copy of test image 1
  .venv/bin/iadet visualize attention --checkpoint "$NONE" --checkpoint "$IA" --label baseline --label IA \
    --data "$DATA" --split test_occluded --max-images 2 --output "$TMP/attention"
  cp "$TMP/attention/attention_test_00001_occ.png" $IMAGES/attention.png
  # Fig. 6: the four inversion strategies on the IA detector
  .venv/bin/iadet visualize strategies --checkpoint "$IA" --data "$DATA" --split test_occluded --max-images 2 \
    --output "$TMP/strategies"
  cp "$TMP/strategies/strategies_test_00001_occ.png" $IMAGES/strategies.png
  # Fig. 5: the attention of fixed RoIs during a quick IA run
  [[ -f runs/pics-evolution/model_final.pth ]] || .venv/bin/iadet train --config quick --set method.name=ia \
    --set method.save_attention_every=100 --output runs/pics-evolution --quiet
  .venv/bin/iadet visualize evolution --run runs/pics-evolution --output "$TMP/evolution"
  cp "$TMP/evolution/evolution.png" $IMAGES/evolution.png
  # Fig. 7: detections of IA on a test image and of both detectors on its occluded copy
  .venv/bin/iadet predict --checkpoint "$IA" "$DATA/JPEGImages/test_00001.jpg" "$DATA/JPEGImages/test_00001_occ.jpg" \
    --score-thresh 0.5 --output "$TMP/ia"
  .venv/bin/iadet predict --checkpoint "$NONE" "$DATA/JPEGImages/test_00001_occ.jpg" --score-thresh 0.5 \
    --output "$TMP/none"
  $PY - "$TMP" $IMAGES/predict.png <<'PY'
import sys
from PIL import Image, ImageDraw
tmp, out = sys.argv[1:]
panels = [("IA, test", "ia/test_00001.jpg"), ("baseline, test_occluded", "none/test_00001_occ.jpg"),
          ("IA, test_occluded", "ia/test_00001_occ.jpg")]
images = [Image.open(f"{tmp}/{p}").convert("RGB") for _, p in panels]
scale, gap, head = 2, 8, 20
width = sum(i.width * scale for i in images) + gap * (len(images) - 1)
canvas = Image.new("RGB", (width, images[0].height * scale + head), "white")
draw, x = ImageDraw.Draw(canvas), 0
for (caption, _), image in zip(panels, images):
    canvas.paste(image.resize((image.width * scale, image.height * scale), Image.NEAREST), (x, head))
    draw.text((x + 4, 4), caption, fill="black")
    x += image.width * scale + gap
canvas.save(out)
PY
  # occlusion sweep: mAP against the occluded fraction of every box, both detectors (drawn in step 1)
  .venv/bin/iadet robustness --checkpoint "$NONE" "$IA" --label baseline IA --data "$DATA" --split test \
    --occlusion 0,0.1,0.2,0.3,0.4,0.5,0.6 --max-images 300 --output "$TMP/occlusion"
  cp "$TMP/occlusion/occlusion.json" benchmarks/results/occlusion_curve.json
fi

# 1. results plots from committed results, nothing trained
FINISHED_ONLY=1 IADET=.venv/bin/iadet bash benchmarks/finetune_headline.sh >/dev/null
FINISHED_ONLY=1 IADET=.venv/bin/iadet bash benchmarks/finetune_posthoc.sh >/dev/null
$PY - <<'PY'
import json
from pathlib import Path

from iadet.comparison.report import write_report
from iadet.robustness.plots import plot_occlusion

full = Path("benchmarks/results/full")
write_report(json.loads((full / "results.json").read_text()), full)

sweep = json.loads(Path("benchmarks/results/occlusion_curve.json").read_text())
curves = {
    label: {key: sweep[key] for key in ("fractions", "coverage", "metric")} | {"mAP": curve["mAP"]}
    for label, curve in sweep["curves"].items()
}
plot_occlusion(curves, "docs/images/occlusion.png")
PY
$PY benchmarks/corruption_v2_report.py benchmarks/results/corruption-v2 >/dev/null
ls -l benchmarks/results/finetune/*.png benchmarks/results/corruption-v2/*.png $IMAGES/occlusion.png
