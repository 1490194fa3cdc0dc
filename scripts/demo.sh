#!/usr/bin/env bash
# The main job on the embedded sample_data/, offline, on the CPU, with the tiny random backbone.
# Its numbers check the pipeline, not the method: the tiny CLIP has random weights.
set -euo pipefail
cd "$(dirname "$0")/.."
UMBENET=.venv/bin/umbenet
OUT=${OUT:-runs/demo}

$UMBENET info --preset tiny
# Decode -> faces -> audio -> captions -> CLIP embeddings; a second run reuses everything.
$UMBENET prep mafw sample_data/mafw --out "$OUT/cache" --preset tiny
echo "demo: feature cache in $OUT/cache (read it with pandas: pd.read_parquet('$OUT/cache/features'))"
