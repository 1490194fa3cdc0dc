#!/usr/bin/env bash
# The whole performance suite (prep, cache, training; the GPU part skips itself without CUDA).
#
#   bash benchmarks/run_perf.sh           # quick: small sizes, about 10 minutes on a 2-core CPU
#   bash benchmarks/run_perf.sh --full    # the sizes of benchmarks/perf/README.md (about 75 minutes)
#
# Writes benchmarks/perf/results.json (replaced on every run) and prints the targets table.
# Never downloads anything: backbones are the offline tiny CLIP or random-weight CLIPs of the
# real widths, written into a scratch folder that is deleted at the end. Not a test: CI never runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
P=benchmarks/perf
MODE=quick
case "${1:-}" in
  "") ;;
  --full) MODE=full ;;
  *) echo "usage: bash benchmarks/run_perf.sh [--full]" >&2; exit 2 ;;
esac
[ -x "$PY" ] || { echo "no $PY: run 'make setup' first" >&2; exit 2; }
command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed: run 'make setup' first" >&2; exit 2; }

PERF_WORK=$(mktemp -d "${TMPDIR:-/tmp}/umbenet-perf.XXXXXX")
export PERF_WORK HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
trap 'rm -rf "$PERF_WORK"' EXIT
rm -f "$P/results.json"
START=$(date +%s)
"$PY" - "$MODE" <<'EOF'
import sys
sys.path.insert(0, "benchmarks/perf")
from _common import save_section
save_section("mode", sys.argv[1])
EOF

step() { echo; echo "=== $* ($(( $(date +%s) - START )) s elapsed)"; "$PY" "$@"; }

if [ "$MODE" = quick ]; then
  step $P/bench_faces.py --clips 3 --repeats 2
  step $P/bench_decode.py --repeats 2 --sample 12 --hd 1
  step $P/bench_prep.py --baseline --clips 3 --hd 1 --repeats 2
  step $P/bench_prep.py --stages --stage-clips 12 --repeats 2
  step $P/bench_prep_memory.py --sizes 12,48
  step $P/bench_cache.py --clips 10000 --repeats 5
  step $P/bench_embed.py --clips 2 --repeats 1
  # batch 8 here to stay quick; --full measures the paper's batch 16
  step $P/bench_train.py --configs vitb16,tiny --batch 8 --repeats 2 --warmup 0 --no-eval --no-extras --tiny-repeats 30
  step $P/bench_asr.py --repeats 1
else
  step $P/bench_faces.py --clips 16 --repeats 5
  step $P/bench_decode.py --repeats 5 --hd 4
  step $P/bench_prep.py --baseline --clips 33 --hd 3 --hd-full --repeats 3
  step $P/bench_prep.py --stages --stage-clips 33 --repeats 3 --stage-threads default,1
  step $P/bench_prep_memory.py --sizes 200,2000
  step $P/bench_cache.py --clips 10000 --repeats 7 --audio
  step $P/bench_embed.py --clips 8 --repeats 2
  step $P/bench_train.py --configs vitb16,tiny --repeats 3 --warmup 1 --tiny-repeats 30
  step $P/bench_asr.py --repeats 4
fi
step $P/project_flops.py
step $P/gpu_bench.py
echo
echo "=== done in $(( $(date +%s) - START )) s; results in $P/results.json"
"$PY" $P/report.py
