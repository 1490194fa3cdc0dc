"""PartWriter gives the memory of a flushed part back: resident memory after a flush stays near
what it was before the part was buffered, however many parts are written (prep of 2,000 clips
must not hold several parts' worth of freed buffers; benchmarks/perf, memory).

Measured in a fresh process (RSS of the test runner itself depends on every earlier test)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys, tempfile
from pathlib import Path
import numpy as np
from umbenet_cli.data.cache_schema import CacheSpec
from umbenet_cli.data.cache_write import PartWriter

def rss_mib():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) // 1024 for l in fh if l.startswith("VmRSS"))

spec = CacheSpec(dataset="t", classes=("a", "b"), num_frames=4, audio_seconds=8.0, sample_rate=16000,
                 sampling="centre", embed_dim=8, backbone="b", backbone_fingerprint="f")
wave = np.random.default_rng(0).standard_normal(128000).astype(np.float32)  # 8 s: 256 KB as float16
after = []
with tempfile.TemporaryDirectory() as d:
    with PartWriter(Path(d) / "features", spec, rows_per_part=10**6, max_part_bytes=48 << 20) as w:
        before = rss_mib()
        parts = 0
        for i in range(4 * 192):  # 4 parts of 48 MB
            w.write({"clip_id": f"c{i:05d}", "label": 0, "fold": 1, "status": "ok", "status_reason": "",
                     "n_source_frames": 4, "n_valid_frames": 4, "face_ratio": 1.0,
                     "audio_num_samples": 128000, "text": None, "text_source": "none",
                     "text_language": None, "frame_emb": np.zeros((4, 8), np.float32), "audio": wave,
                     "text_emb": None})
            if len(w.parts_written) > parts:  # this row completed a part, which was flushed
                parts = len(w.parts_written)
                after.append(rss_mib() - before)
    print(json.dumps({"parts": len(w.parts_written), "growth_after_flush_mib": after}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_flushed_parts_do_not_stay_resident():
    p = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["parts"] == 4
    # Before the fix each flush of a 48 MB part left ~280 MiB resident (the buffered rows, their
    # Arrow table and the page buffers, kept by Arrow's allocator); now < 3 parts' worth, not growing.
    assert max(r["growth_after_flush_mib"]) < 3 * 48, r
    assert r["growth_after_flush_mib"][-1] <= r["growth_after_flush_mib"][0] + 16, r
