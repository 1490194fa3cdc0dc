"""Peak memory of ``umbenet prep`` against the number of clips.

Each size runs as its own process tree (``umbenet prep manifest ...``, media + embed with the
offline tiny CLIP, T 16, 8 s audio), started by a small wrapper that reports the largest max RSS
of its descendants (``getrusage(RUSAGE_CHILDREN)``) and samples the prep process's RSS every
0.25 s (``/proc/PID/status``), so that growth during the run shows, not only the peak.

    python benchmarks/perf/bench_prep_memory.py --sizes 200,2000
    python benchmarks/perf/bench_prep_memory.py --sizes 100,400 --media-only --env MALLOC_ARENA_MAX=2 \
        --section prep_memory_diagnosis      # what the growth comes from
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from _common import PYTHON, clip_set, save_section
from bench_prep import OFFLINE, prep_args

WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
trace = []
import threading
err = []
th = threading.Thread(target=lambda: err.append(p.stderr.read()))
th.start()
while p.poll() is None:
    try:
        with open(f"/proc/{p.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    trace.append((round(time.perf_counter() - t0, 2), int(line.split()[1]) // 1024))
    except OSError:
        pass
    time.sleep(0.25)
th.join()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "wall_s": time.perf_counter() - t0, "maxrss_mib": ru.ru_maxrss / 1024,
                  "trace": trace, "stderr_tail": err[0][-2000:]}))
"""


def measure(n: int, tmp: Path, media_only: bool = False, env: dict | None = None) -> dict:
    folder = tmp / f"mem{n}"
    manifest = clip_set(folder, n)
    out = tmp / f"mem-out{n}"
    p = subprocess.run([PYTHON, "-c", WRAPPER, *prep_args(manifest, out, media_only=media_only)],
                       capture_output=True, text=True, env={**os.environ, **OFFLINE, **(env or {})})
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if r["rc"] != 0:
        raise RuntimeError(f"prep of {n} clips failed:\n{r['stderr_tail']}")
    trace = r.pop("trace")
    r.pop("stderr_tail")
    # RSS at 10%, 25%, 50%, 75%, 90% of the run and its maximum as sampled.
    pts = {}
    if trace:
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):
            pts[f"{int(q * 100)}%"] = trace[min(len(trace) - 1, int(q * len(trace)))][1]
        pts["sampled max"] = max(m for _, m in trace)
    # The whole trace, thinned to at most 200 points: where in the run the peak falls.
    r["rss_trace_s_mib"] = trace[::max(1, len(trace) // 200)]
    if trace:
        t_max, m_max = max(trace, key=lambda p: p[1])
        r["peak_at_fraction_of_run"] = round(t_max / trace[-1][0], 3)
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    r.update({"clips": n, "rss_mib_during_run": pts, "clips_per_s": n / r["wall_s"], "media_only": media_only,
              "env": env or {}})
    print(f"  {n} clips: max RSS {r['maxrss_mib']:.0f} MiB, {r['wall_s']:.0f} s ({n / r['wall_s']:.2f} clips/s), "
          f"RSS during the run {pts}, peak at {r.get('peak_at_fraction_of_run')} of the run")
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="200,2000")
    ap.add_argument("--media-only", action="store_true")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the prep process (diagnosis)")
    ap.add_argument("--section", default="prep_memory", help="results.json key to write")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    env = dict(e.split("=", 1) for e in args.env)
    tmp = Path(tempfile.mkdtemp(prefix="perf-mem-"))
    print(f"prep memory: sizes {sizes}{' media-only' if args.media_only else ''}{f' env {env}' if env else ''}")
    try:
        runs = {str(n): measure(n, tmp, args.media_only, env) for n in sizes}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lo, hi = str(min(sizes)), str(max(sizes))
    result = {"runs": runs, "sizes": sizes, "media_only": args.media_only, "env": env,
              "ratio_peak_largest_over_smallest": runs[hi]["maxrss_mib"] / runs[lo]["maxrss_mib"]}
    if args.section == "prep_memory":
        save_section(args.section, result)
    else:  # diagnosis runs accumulate under one key
        import json

        from _common import RESULTS

        old = json.loads(RESULTS.read_text()).get(args.section, {}) if RESULTS.exists() else {}
        label = ("media-only " if args.media_only else "") + (" ".join(args.env) or "defaults")
        save_section(args.section, {**old, label: result})
    print(f"  peak ratio {hi}/{lo} clips: {runs[hi]['maxrss_mib'] / runs[lo]['maxrss_mib']:.2f}")


if __name__ == "__main__":
    main()
