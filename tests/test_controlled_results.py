"""The controlled benchmark's report writer (benchmarks/controlled/write_results.py): paired
statistics, the attribution's sum, columns only for arms that ran, the hand-written reading kept."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from tests.benchmark_scripts import load_script



def load():
    return load_script("write_results")


def test_paired_is_the_paired_t_interval():
    wr = load()
    a, b = np.array([55.0, 52.1, 60.3, 49.8, 57.0]), np.array([53.2, 52.9, 57.1, 47.0, 56.5])
    p = wr.paired(a, b)
    d = a - b
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert p["mean"] == pytest.approx(d.mean()) and p["se"] == pytest.approx(stats.sem(d))
    assert (p["lo"], p["hi"]) == pytest.approx((ci.low, ci.high))
    assert p["wins"] == int((d > 0).sum()) and p["n"] == 5
    assert wr.verdict(p) == "not resolved (interval spans 0)"
    assert wr.verdict(wr.paired(a + np.array([3, 4, 5, 4, 3.5]), a)).startswith("two-stage ahead")
    assert wr.verdict(wr.paired(a, a + np.array([3, 4, 5, 4, 3.5]))).startswith("two-stage behind")


def _seed(rng, arms):
    def sub(x):
        return {"uar": x, "war": x}
    subsets = ("V", "A", "T", "V+T", "V+A", "A+T", "V+A+T")
    out = {k: {s: sub(float(rng.uniform(0.2, 0.7))) for s in subsets} for k in arms}
    out["two_stage"]["_stage2_init"] = {"carried": 6, "fresh": 2}
    out["trained_on_subset"] = {s: sub(float(rng.uniform(0.2, 0.7))) for s in ("V", "A", "T", "V+T", "V+A", "V+A+T")}
    return out


def test_markdown_attribution_sums_and_reading_is_kept(tmp_path):
    wr = load()
    rng = np.random.default_rng(0)
    arms = ("bayes", "plugin", "two_stage", "one_stage", "no_pool", "class_vectors", "late_fusion")
    ps = [_seed(rng, arms) for _ in range(4)]
    results = {"command": "c", "commit": "abc", "date": "2026-12-03", "machine": "m", "seeds": [0, 1, 2, 3],
               "epochs": 20, "sweep_epochs": 20, "clips_per_class": 120, "signal": {}, "missing": {},
               "settings": [], "arms": {"two_stage": ["--stage", "both"]}, "per_seed": ps, "sweep": {},
               "seconds": 1.0, "seconds_note": "n"}
    path = tmp_path / "RESULTS.md"
    path.write_text("old tables\n" + wr.KEEP_MARK + "\nmy reading\n")
    wr.write_markdown(results, path)
    text = path.read_text()
    assert "old tables" not in text and text.endswith(wr.KEEP_MARK + "\nmy reading\n")
    assert "logit scale 100" not in text.split("## The paper's claim")[0]  # no column for an arm that did not run
    # The three steps add up to late fusion − two-stage, seed by seed.
    rows = [line for line in text.splitlines() if line.startswith("| ") and "±" in line and "[" in line]
    steps = [float(r.split("|")[2].split("±")[0]) for r in rows if "(pool off" in r or "(learned vectors" in r
             or "(late fusion − class" in r]
    total = next(float(r.split("|")[2].split("±")[0]) for r in rows if r.startswith("| **sum"))
    assert len(steps) == 3 and sum(steps) == pytest.approx(total, abs=0.15)
    lf = np.mean([100 * p["late_fusion"]["V+A+T"]["war"] for p in ps])
    ts = np.mean([100 * p["two_stage"]["V+A+T"]["war"] for p in ps])
    assert total == pytest.approx(lf - ts, abs=0.05)
    assert "seed 0: 6 carried / 2 fresh" in text
    history = text.split("## History")[1]
    assert "| 2026-12-03 | abc |" in history and "| 2026-11-24 | bff9742 |" in history
    wr.write_markdown(results, path)
    assert path.read_text() == text  # rewriting is stable
