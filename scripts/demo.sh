#!/usr/bin/env bash
# The main job on the embedded sample_data/ (33 clips in MAFW's release layout), offline, on the
# CPU: prep -> train (both stages) -> eval (every modality subset) -> report -> predict.
# It uses the tiny CLIP with RANDOM weights: its numbers check the pipeline, not the method;
# the second part (demo_learning.py) shows the method learning on a synthetic cache.
set -euo pipefail
cd "$(dirname "$0")/.."
UMBENET=.venv/bin/umbenet
OUT=${OUT:-runs/demo}
RUN=demo-tiny

# Faces, frames, audio and captions -> Parquet feature cache (a second run reuses everything).
$UMBENET prep mafw sample_data/mafw --out "$OUT/cache" --preset tiny
# Stage 1 (unimodal prompts) then stage 2 (random missing modalities) on fold 1 of 5.
if [ -f "$OUT/runs/$RUN/run.json" ]; then
  $UMBENET train --cache "$OUT/cache" --runs-dir "$OUT/runs" --name "$RUN" --resume
else
  $UMBENET train --cache "$OUT/cache" --runs-dir "$OUT/runs" --name "$RUN" --preset tiny --fold 1 \
    --stage both --set optim.max_epochs=3
fi
# UAR/WAR for every modality subset (11-class and without neutral), confusion matrices.
$UMBENET eval "$OUT/runs/$RUN"
# The paper's tables with ours beside theirs, figures, as Markdown and self-contained HTML.
$UMBENET report "$OUT/runs/$RUN" --out "$OUT/report"
# A new video: here a sample clip that has no audio track.
$UMBENET predict sample_data/mafw/clips/00007.mp4 --run "$OUT/runs/$RUN" --no-asr --json "$OUT/predict.json"
# Part 2: the method learning, on synthetic data with a known answer (not emotion recognition):
# the tiny model trained briefly, each modality subset's UAR/WAR beside chance and Bayes-optimal.
.venv/bin/python benchmarks/controlled/demo_learning.py --out "$OUT/learning"
echo "demo: cache $OUT/cache, run $OUT/runs/$RUN, report $OUT/report/report.html, prediction $OUT/predict.json, learning $OUT/learning/learning.json"
