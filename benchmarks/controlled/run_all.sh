#!/usr/bin/env bash
# The whole controlled benchmark as RESULTS.md reports it: every part as its own process, two at a
# time (the machine's 2 cores), longest first; then the 480- and 120-clips results are merged
# (480 first: RESULTS.md's history table reads results-480-clips.json).
#   bash benchmarks/controlled/run_all.sh            # ~90 min on 2 cores (2026-12-03)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
B=benchmarks/controlled/run_controlled.py
rm -rf benchmarks/controlled/.parts benchmarks/controlled/.parts-480-clips
mkdir -p benchmarks/controlled/.logs
{
  for s in 0 1 2 3 4; do echo "--clips-per-class 480 --part seed:$s"; done
  for s in 0 1 2; do echo "--part sweep:$s"; done
  for s in 0 1 2 3 4; do echo "--part seed:$s"; done
  for s in 0 1 2 3 4; do echo "--part scale:$s"; done
} | xargs -P 2 -I{} sh -c "$PY $B {} > \"benchmarks/controlled/.logs/\$(echo '{}' | tr -c 'a-z0-9\n' _).log\" 2>&1 && echo done: {}"
$PY $B --clips-per-class 480 --merge > /dev/null
$PY $B --merge > /dev/null
echo "wrote benchmarks/controlled/RESULTS.md and RESULTS-480-clips.md"
