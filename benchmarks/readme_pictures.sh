#!/usr/bin/env bash
# The README's pictures, from the headline comparison's seed-0 checkpoints (none, ia) on the `full`
# built-in data and a quick IA run that records its attention (about 10 minutes on 2 CPU cores).
#
#   bash benchmarks/readme_pictures.sh [BENCH_DIR]     # BENCH_DIR: benchmarks/full_comparison.sh's output
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${1:-runs/bench-full}
NONE=$BENCH/runs/none/seed0/model_final.pth
IA=$BENCH/runs/ia/seed0/model_final.pth
DATA=$(.venv/bin/python -c "from iadet.data.catalog import builtin_root; print(builtin_root('full'))")
TMP=$(mktemp -d)
IMAGES=docs/images

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
.venv/bin/iadet predict --checkpoint "$NONE" "$DATA/JPEGImages/test_00001_occ.jpg" --score-thresh 0.5 --output "$TMP/none"
.venv/bin/python - "$TMP" $IMAGES/predict.png <<'PY'
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
# occlusion curve: mAP against the occluded fraction of every box, both detectors
.venv/bin/iadet robustness --checkpoint "$NONE" "$IA" --label baseline IA --data "$DATA" --split test \
  --occlusion 0,0.1,0.2,0.3,0.4,0.5,0.6 --max-images 300 --output "$TMP/occlusion"
cp "$TMP/occlusion/occlusion.png" $IMAGES/occlusion.png
cp "$TMP/occlusion/occlusion.json" benchmarks/results/occlusion_curve.json
ls -l $IMAGES
