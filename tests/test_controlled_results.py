"""The controlled benchmark (benchmarks/controlled/): its arms get equal budgets and start where the
issue says, a seed part runs end to end through the real CLI, and the report's statistics find a
planted difference and nothing in noise."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from tests.benchmark_scripts import load_script


def test_paired_is_the_paired_t_interval_and_mdd_has_80_percent_power():
    wr = load_script("write_results")
    a, b = np.array([55.0, 52.1, 60.3, 49.8, 57.0]), np.array([53.2, 52.9, 57.1, 47.0, 56.5])
    p = wr.paired(a, b)
    d = a - b
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert p["mean"] == pytest.approx(d.mean()) and p["se"] == pytest.approx(stats.sem(d))
    assert (p["lo"], p["hi"]) == pytest.approx((ci.low, ci.high))
    assert p["half"] == pytest.approx((ci.high - ci.low) / 2)
    assert p["wins"] == int((d > 0).sum()) and p["n"] == 5
    assert p["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    # Holm: step down from the smallest p-value, stop at the first that misses alpha / (m - i).
    assert wr.holm({"a": 0.001, "b": 0.012, "c": 0.03, "d": 0.5}) == {"a", "b"}  # 0.012 <= 0.05/3, 0.03 > 0.05/2
    assert wr.holm({"a": 0.03, "b": 0.04}) == set()  # 0.03 > 0.05 / 2
    assert wr.holm({"a": 0.02, "b": 0.024}) == {"a", "b"}
    assert wr.verdict(p) == "not resolved (interval spans 0)"
    assert wr.verdict(wr.paired(a + np.array([3, 4, 5, 4, 3.5]), a)).startswith("two-stage ahead")
    assert wr.verdict(wr.paired(a, a + np.array([3, 4, 5, 4, 3.5]))).startswith("two-stage behind")
    # The detectable difference: a paired t test (two-sided 5%) at that true mean has ~80% power
    # (exact power from the noncentral t).
    for n, sd in ((5, 2.0), (12, 3.4), (20, 4.0)):
        m = wr.mdd(sd, n)
        crit = stats.t.ppf(0.975, n - 1)
        nc = m / (sd / np.sqrt(n))
        power = stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)
        assert power == pytest.approx(0.8, abs=0.03)


def test_arms_have_equal_budgets_and_the_carry_arms_start_from_two_stage():
    rc = load_script("run_controlled")
    assert set(rc.ARMS) == {"two_stage", "one_stage", "one_stage_all_modalities", "two_stage_carry_all",
                            "two_stage_carry_none", "two_stage_stage2_lr", "authors_code"}
    for arm in rc.ARMS:
        assert sum(rc.budget(arm, 7).values()) == 14, arm  # E + E or 2E, at any E
    ckpt = "/x/stage1-seed3"
    args = {a: rc.arm_args(a, 7, ckpt) for a in rc.ARMS}
    assert args["one_stage"] == ["--stage", "one", "--set", "optim.max_epochs=14"]
    assert "--all-modalities" in args["one_stage_all_modalities"] and "optim.max_epochs=14" in args["one_stage_all_modalities"]
    for arm, rule in (("two_stage_carry_all", "all"), ("two_stage_carry_none", "none")):
        assert args[arm][:4] == ["--stage", "2", "--init-from", ckpt] and f"pool.transfer={rule}" in args[arm]
    assert args["two_stage_stage2_lr"][:4] == ["--stage", "2", "--init-from", ckpt]
    # The benchmark's pool is the paper's main one at the tiny widths: N 32, k 5, 16 = 8 + 8 tokens.
    s = rc.SETTINGS
    assert (s["pool.size"], s["pool.top_k"], s["pool.length"], s["inherent_length"]) == (32, 5, 8, 8)
    # authors_code: every setting of the authors-code preset that is not a width, backbone, batch or epochs.
    from umbenet_cli.model.config import UMBEnetConfig, _flatten

    tiny, theirs = _flatten(UMBEnetConfig.preset("tiny").to_dict()), _flatten(UMBEnetConfig.preset("authors-code").to_dict())
    differ = {k for k in theirs if theirs[k] != tiny.get(k)}
    widths = {"backbone", "inherent_length", "num_frames", "optim.batch_size", "optim.max_epochs", "optim.stop_train_accuracy"}
    wanted = {k for k in differ if k not in widths and not k.startswith(("temporal.", "audio.", "fusion.", "pool.size",
                                                                         "pool.length", "pool.top_k", "sff.hidden"))}
    assert wanted == set(rc.AUTHORS_CODE)
    assert all(str(theirs[k]) == str(v) for k, v in rc.AUTHORS_CODE.items())


def test_a_null_difference_is_resolved_at_the_test_level_and_a_planted_one_always():
    wr = load_script("write_results")
    rng = np.random.default_rng(1)
    hits, planted = 0, 0
    for _ in range(400):
        seed_level = rng.normal(50, 4, 12)
        a, b = seed_level + rng.normal(0, 2, 12), seed_level + rng.normal(0, 2, 12)
        hits += wr.verdict(wr.paired(a, b)) != "not resolved (interval spans 0)"
        planted += wr.verdict(wr.paired(a + 4, b)).startswith("two-stage ahead")
    assert 0.02 <= hits / 400 <= 0.09  # 5% two-sided
    assert planted / 400 > 0.9  # 4 points at sd 2.8 of the difference, 12 seeds: power ~0.99


def _arm(rng, shift=0.0, stages=("stage1", "stage2")):
    subsets = ("V", "A", "T", "V+T", "V+A", "A+T", "V+A+T")
    out = {s: {"uar": float(x), "war": float(x)} for s, x in zip(subsets, 0.5 + shift + rng.normal(0, 0.005, 7))}
    curve = [{"epoch": e, "lr": 2e-3, "val_uar": 0.5, "val_loss": 1.0, "train_uar": 0.5, "train_loss": 1.0}
             for e in range(1, 21)]
    out["_stages"] = {s: {"epochs": 20, "best_epoch": 7, "best_val_uar": 0.5, "stop_reason": "max_epochs", "curve": curve}
                      for s in stages}
    out["_budget"] = {s: 20 for s in ("stage1", "stage2")} if len(stages) > 1 or stages == ("stage2",) else {"onestage": 40}
    out["_seconds"] = 60.0
    return out


def test_markdown_finds_the_planted_difference_only_and_keeps_the_reading(tmp_path):
    wr = load_script("write_results")
    rng = np.random.default_rng(0)
    ps = []
    for _ in range(12):
        base = rng.normal(0, 0.03)  # the seed's difficulty, shared by its arms: pairing removes it
        p = {"bayes": _arm(rng, 0.2), "plugin": _arm(rng, 0.15), "untrained_transfer": {
            "paper": {"significant": 9, "above_uniform": 20, "top": 12, "any": 32, "all": 32, "none": 0}}}
        p["two_stage"] = _arm(rng, base + 0.03)  # planted: 3 points ahead of one_stage
        p["one_stage"] = _arm(rng, base, ("onestage",))
        p["two_stage_carry_none"] = _arm(rng, base + 0.03, ("stage2",))  # null: level with two_stage
        p["two_stage"]["_transfer"] = {"rule": "significant", "carried": 18, "fresh": 14, "would_carry": {
            "significant": 18, "above_uniform": 22, "top": 13, "any": 32, "all": 32, "none": 0}}
        p["selection"] = {"before": {"significant": list(range(10))}, "after": {"significant": list(range(4, 22))},
                          "significant_both": 6, "top_both": {"V": 1, "A": 0, "T": 2}}
        ps.append(p)
    results = {"command": "c", "commit": "abc", "date": "2026-12-07", "machine": "m", "seeds": list(range(12)),
               "epochs": 20, "clips_per_class": 120, "signal": {}, "settings": {"pool.size": 32, "pool.top_k": 5,
               "pool.length": 8, "inherent_length": 8}, "authors_code": {"optim.lr": 2e-4},
               "arms": {"two_stage": {"args": ["--stage", "both"]}}, "per_seed": ps, "table4": {},
               "seconds": {"process": 600.0, "parts": 12, "wall": 300.0}, "seconds_per_arm": {"two_stage": 60.0}}
    path = tmp_path / "RESULTS.md"
    path.write_text("old tables\n" + wr.KEEP_MARK + "\nmy reading\n")
    wr.write_markdown(results, path)
    text = path.read_text()
    assert "old tables" not in text and text.endswith(wr.KEEP_MARK + "\nmy reading\n")
    one = text.split("### two-stage − one-stage\n")[1].split("###")[0]
    none = text.split("### two-stage − two-stage, carry none\n")[1].split("##")[0]
    rows = [r for r in one.splitlines() if r.startswith("| ") and "±" in r and "subset" not in r]
    assert len(rows) == 7 and all("two-stage ahead" in r for r in rows)
    assert all(float(r.split("|")[2].split("±")[0]) == pytest.approx(3.0, abs=0.5) for r in rows)
    assert "Resolved: two-stage is ahead on V, A, T, V+T, V+A, A+T, V+A+T. Of these, V, A, T, V+T, V+A, A+T, V+A+T hold" in one
    assert "+0.48 UAR / +1.26 WAR with 11 classes" in one and "is within reach." in one  # sd 0.7 here
    assert none.count("not resolved (interval spans 0)") >= 5  # the null arm: at most chance's share resolved
    assert "### two-stage − authors' code" not in text  # no section for an arm that did not run
    budgets = text.split("## Budgets")[1].split("##")[0]
    assert "| two-stage | 20 + 20 | 20.0 + 20.0 | 7 [7-7] + 7 [7-7] | 27 [27-27] |" in budgets
    assert "| one-stage | 40 | 20.0 | 7 [7-7] | 7 [7-7] |" in budgets
    assert "| two-stage, carry none | 20 + 20 | (two-stage's) + 20.0 |" in budgets
    carried = text.split("## What stage 2 carried")[1].split("##")[0]
    assert "| significant | 18 [18-18] | 9 [9-9] |" in carried
    assert "| two-stage | 10 [10-10] | 18 [18-18] | 6 [6-6] | 5.6 | 1.0 of 5 (chance 0.8) | 0.0 of 5" in carried
    # Pre-training + transfer = two-stage − one-stage, row by row (the planted 3 points are all pre-training).
    for row in text.split("### Which part")[1].split("##")[0].splitlines():
        if row.startswith("| ") and "[" in row:
            pre, tr, total = (float(c.split("[")[0]) for c in row.split("|")[2:5])
            assert pre + tr == pytest.approx(total, abs=0.15) and total == pytest.approx(3.0, abs=0.5)
    assert "| 2026-12-07 | abc | equal budgets" in text
    wr.write_markdown(results, path)
    assert path.read_text() == text  # rewriting is stable


def test_a_seed_part_runs_the_arms_through_the_cli_and_merges(tmp_path, monkeypatch):
    """Two arms of one seed at a tiny size: two_stage keeps its stage-1 checkpoint, carry-none starts
    from it through --init-from, the part and the merge carry what the report reads."""
    rc = load_script("run_controlled")
    monkeypatch.setattr(rc, "CLASSES", rc.CLASSES[:4] + ("neutral",))
    monkeypatch.setitem(rc.SETTINGS, "pool.size", 8)
    monkeypatch.setitem(rc.SETTINGS, "pool.top_k", 2)
    monkeypatch.setitem(rc.SETTINGS, "optim.batch_size", 4)
    keep = tmp_path / "parts" / "checkpoints"
    with pytest.raises(SystemExit, match="run two_stage first"):
        rc.seed_part(0, tmp_path / "w0", 1, 6, ["two_stage_carry_none"], keep)
    part = rc.seed_part(0, tmp_path / "w", 1, 6, ["two_stage", "two_stage_carry_none"], keep)
    assert (keep / "stage1-seed0" / "COMPLETE").is_file()
    ts, none = part["two_stage"], part["two_stage_carry_none"]
    assert set(ts["_stages"]) == {"stage1", "stage2"} and set(none["_stages"]) == {"stage2"}
    assert ts["_budget"] == none["_budget"] == {"stage1": 1, "stage2": 1}
    assert ts["_transfer"]["rule"] == "significant" and none["_transfer"]["carried"] == 0
    assert ts["_transfer"]["carried"] == ts["_transfer"]["would_carry"]["significant"]
    assert none["_transfer"]["would_carry"] == ts["_transfer"]["would_carry"]  # the same stage 1, the same counts
    assert set(part["untrained_transfer"]["paper"]) >= {"significant", "above_uniform", "any", "top"}
    assert len(ts["_stages"]["stage2"]["curve"]) == 1 and 0 <= ts["V+A+T"]["war"] <= 1
    # The selection part rebuilds the arm's stage-1 model: before training it picks what the
    # untrained control counted, after it (the kept checkpoint) what stage 2 carried.
    sel = rc.selection_part(0, tmp_path / "w2", 1, 6, keep)["selection"]
    assert len(sel["before"]["significant"]) == part["untrained_transfer"]["paper"]["significant"]
    assert len(sel["after"]["significant"]) == ts["_transfer"]["carried"]
    assert all(len(v) == 2 for v in sel["after"]["top"].values())
    parts = tmp_path / "parts"
    (parts / "seed0.json").write_text(json.dumps(part | {"_seed": 0, "_seconds": 1.0, "_started": 0.0, "_ended": 1.0,
                                                          "_commit": "abc"}))
    (parts / "selection-0.json").write_text(json.dumps({"selection": sel, "_seed": 0, "_seconds": 2.0, "_started": 1.0,
                                                        "_ended": 3.0, "_commit": "abc"}))
    merged = rc.merge(parts, 1, 6)
    assert merged["seeds"] == [0] and merged["per_seed"][0]["two_stage"]["V+A+T"] == ts["V+A+T"]
    assert merged["per_seed"][0]["selection"] == sel
    assert merged["seconds"] == {"process": 3.0, "parts": 2, "wall": 3.0}
    (parts / "seed10.json").write_text((parts / "seed0.json").read_text().replace('"_seed": 0', '"_seed": 10'))
    with pytest.raises(SystemExit, match="tuning seed"):
        rc.merge(parts, 1, 6)
