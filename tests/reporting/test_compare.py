"""Comparison with the paper on hand-made MAFW results, and the report's errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.reporting.helpers import handmade_run, table_after
from umbenet_cli.cli import main

FULL = ("video", "audio", "text")
SCORES = {  # fractions: 11-class UAR, WAR, 10-class UAR, WAR
    ("video",): (0.40, 0.50, 0.39, 0.55),
    ("audio",): (0.11, 0.15, 0.12, 0.18),
    ("text",): (0.45, 0.58, 0.40, 0.52),
    ("video", "text"): (0.50, 0.66, 0.47, 0.63),
    ("video", "audio"): (0.41, 0.55, 0.43, 0.60),
    ("video", "audio", "text"): (0.55, 0.70, 0.50, 0.66),
}


@pytest.fixture
def mafw_report(tmp_path):
    runs = tmp_path / "runs"
    handmade_run(runs, "mafw-full", SCORES)
    handmade_run(runs, "mafw-v", {("video",): (0.42, 0.56, 0.40, 0.56)}, trained=("video",))
    handmade_run(runs, "mafw-one", {FULL: (0.52, 0.67, 0.47, 0.61)}, stage="one")
    handmade_run(runs, "mafw-p16", {FULL: (0.40, 0.50, 0.45, 0.61)},
                 pool={"size": 16, "length": 32, "top_k": 3, "query": "cosine", "enabled": True})
    # Table 4's length is the whole prompt: 64 pool tokens + 4 inherent ones (68) is no row of it
    handmade_run(runs, "mafw-l64", {FULL: (0.40, 0.50, 0.45, 0.61)}, inherent_length=4,
                 pool={"size": 32, "length": 64, "top_k": 5, "query": "cosine", "enabled": True})
    handmade_run(runs, "toy", {("video",): (0.5, 0.5, 0.5, 0.5)}, dataset="synthetic",
                 classes=("happy", "sad", "neutral", "angry"), trained=("video",))
    out = tmp_path / "report"
    assert main(["report", "--runs-dir", str(runs), "--out", str(out)]) == 0
    return (out / "report.md").read_text()


def cmp_row(rows, ours, subset, classes, published, setting=None):
    found = [r for r in rows if (r["Ours"], r["Subset"], r["Classes"]) == (ours, subset, str(classes))
             and r["Published"].startswith(published) and (setting is None or r["Setting"] == setting)]
    assert len(found) == 1, (ours, subset, classes, published, setting, found)
    return found[0]


def test_mafw_comparison_rows(mafw_report):
    rows = table_after(mafw_report, "Published numbers beside ours")
    r = cmp_row(rows, "mafw-full", "V+A+T", 11, "UMBEnet", "Table 3 block: trained")
    assert (r["UAR ours"], r["UAR paper"], r["Δ UAR"]) == ("55.00", "53.33", "+1.67")
    assert (r["WAR ours"], r["WAR paper"], r["Δ WAR"]) == ("70.00", "68.03", "+1.97")
    r = cmp_row(rows, "mafw-full", "V", 10, "UMBEnet", "Table 3 block: missing")
    assert (r["UAR paper"], r["Δ UAR"], r["WAR paper"], r["Δ WAR"]) == ("42.86", "-3.86", "59.13", "-4.13")
    r = cmp_row(rows, "mafw-full", "A", 11, "UMBEnet", "Table 3 block: missing")
    assert (r["UAR paper"], r["Δ UAR"]) == ("10.03", "+0.97")
    # The video-only run against every method published on MAFW video, 11 classes.
    for method, uar in (("UMBEnet", "41.00"), ("DFER-CLIP", "39.89"), ("MAE-DFER", "41.62"), ("T-ESFL", "33.28")):
        r = cmp_row(rows, "mafw-v", "V", 11, method)
        assert r["UAR paper"] == uar and r["Δ UAR"] == f"{42.0 - float(uar):+.2f}"
    assert cmp_row(rows, "mafw-v", "V", 10, "UMBEnet")["WAR paper"] == "54.79"
    # Table 4: the pool and the training strategy.
    r = cmp_row(rows, "mafw-p16", "V+A+T", 11, "UMBEnet", "pool 64/16/3, 2-stage")
    assert (r["UAR paper"], r["Δ UAR"]) == ("48.73", "-8.73")
    r = cmp_row(rows, "mafw-one", "V+A+T", 10, "UMBEnet", "pool 64/32/5, 1-stage")
    assert (r["UAR paper"], r["Δ UAR"], r["WAR paper"]) == ("48.13", "-1.13", "62.15")
    assert not [r for r in rows if r["Ours"] == "toy"]
    assert not [r for r in rows if r["Ours"] == "mafw-l64" and r["Setting"].startswith("pool")]
    t4 = table_after(mafw_report, "Table 4 style")
    i = next(i for i, r in enumerate(t4) if r["Run"] == "mafw-full")
    assert t4[i]["Length"] == "64 (32 pool + 32 inherent)" and t4[i + 1]["Run"] == "UMBEnet (paper, Table 4)"
    i = next(i for i, r in enumerate(t4) if r["Run"] == "mafw-l64")
    assert t4[i]["Length"] == "68 (64 pool + 4 inherent)"
    assert i + 1 == len(t4) or t4[i + 1]["Run"] != "UMBEnet (paper, Table 4)"
    assert "No published counterpart for dataset(s) synthetic" in mafw_report
    assert "HiCMAE" not in [r["Published"].split(" ")[0] for r in rows]  # no V+A-trained run here


def test_mafw_tables_set_the_paper_beside_ours(mafw_report):
    rows = table_after(mafw_report, "Table 3 style: modality subsets, mafw")
    i = next(i for i, r in enumerate(rows) if r["Run"] == "mafw-v")
    assert rows[i]["UAR (11 cl.)"] == "42.00" and rows[i]["WAR (10 cl., w/o neutral, authors' rule)"] == "56.00"
    assert rows[i]["WAR (10 cl., w/o neutral, strict rule)"] == "55.00"
    paper = rows[i + 1]
    assert paper["Run"] == "UMBEnet (paper, Tables 2-3)"
    assert paper["UAR (11 cl.)"] == "41.00 (Δ +1.00)"
    assert paper["WAR (10 cl., w/o neutral, authors' rule)"] == "54.79 (Δ +1.21)"
    assert paper["WAR (10 cl., w/o neutral, strict rule)"] == "—"  # no published number uses it
    i = next(i for i, r in enumerate(rows) if r["Run"] == "mafw-full" and r["Subset"] == "T"
             and r["Block"] == "missing-modality inference")
    assert rows[i + 1]["UAR (11 cl.)"] == "44.14 (Δ +0.86)"
    t4 = table_after(mafw_report, "Table 4 style: prompt pool and training strategy, mafw")
    i = next(i for i, r in enumerate(t4) if r["Run"] == "mafw-full")
    assert t4[i + 1]["Run"] == "UMBEnet (paper, Table 4)" and t4[i + 1]["WAR (11 cl.)"] == "68.03 (Δ +1.97)"
    strategy = table_after(mafw_report, "Table 4 style: prompt pool and training strategy, mafw", 1)
    assert strategy[-1]["Strategy"] == "Δ 2-stage − 1-stage" and strategy[-1]["UAR (11 cl.)"] == "+3.00"
    # Not the tiny backbone: no pipeline-check note; the synthetic toy run has no comparison.
    assert "tiny backbone" not in mafw_report.split("## Runs")[0]
    assert "T-ESFL: the UMBEnet paper's Table 2" in mafw_report
    # Nothing to draw without metrics, checkpoints or features: said, not crashed.
    assert "mafw-v: nothing to draw (no metrics.jsonl)." in mafw_report


def test_folds_of_separate_runs_are_merged(tmp_path):
    runs = tmp_path / "runs"
    handmade_run(runs, "m-f1", {FULL: (0.50, 0.60, 0.40, 0.50)}, folds=(1,))
    handmade_run(runs, "m-f2", {FULL: (0.54, 0.66, 0.44, 0.58)}, folds=(2,))
    handmade_run(runs, "m-again", {FULL: (0.1, 0.1, 0.1, 0.1)}, folds=(1,))  # same options, fold 1 again
    # run.json differs by run_dir only; m-again repeats fold 1, so it stays apart.
    out = tmp_path / "r"
    assert main(["report", str(runs / "m-f1"), str(runs / "m-f2"), "--out", str(out)]) == 0
    rows = table_after((out / "report.md").read_text(), "Tables 1-2 style")
    assert [(r["Run"], r["Folds"], r["UAR"]) for r in rows] == [
        ("m-f (2 runs)", "2", f"{100 * np.mean([0.5, 0.54]):.2f} ± {100 * np.std([0.5, 0.54], ddof=1):.2f}")]
    assert main(["report", str(runs / "m-f1"), str(runs / "m-again"), "--out", str(out)]) == 0
    rows = table_after((out / "report.md").read_text(), "Tables 1-2 style")
    assert [r["Run"] for r in rows] == ["m-f1", "m-again"]


def test_drop_only_evaluations_are_read(tmp_path):
    runs = tmp_path / "runs"
    run = handmade_run(runs, "d", SCORES)
    res_dir = run / "fold1" / "stage2" / "eval"
    full = json.loads((res_dir / "test" / "results.json").read_text())
    for drop, keep in (("audio", "V+T"), ("audio-text", "V")):
        (res_dir / f"test-drop-{drop}").mkdir()
        one = dict(full, dropped=drop.split("-"), subsets=[e for e in full["subsets"] if e["name"] == keep])
        (res_dir / f"test-drop-{drop}" / "results.json").write_text(json.dumps(one))
    (res_dir / "test" / "results.json").unlink()
    out = tmp_path / "r"
    assert main(["report", str(run), "--out", str(out)]) == 0
    rows = table_after((out / "report.md").read_text(), "Table 3 style")
    assert [(r["Block"], r["Subset"]) for r in rows if r["Run"] == "d"] == [
        ("missing-modality inference", "V"), ("missing-modality inference", "V+T")]


@pytest.mark.parametrize("case", ["no-eval", "empty", "none-evaluated", "not-a-run", "partial", "missing", "split"])
def test_errors_exit_2_with_the_fix(tmp_path, capsys, case):
    runs = tmp_path / "runs"
    runs.mkdir()
    out = tmp_path / "out"
    args = ["report", "--out", str(out)]
    if case == "no-eval":
        run = handmade_run(runs, "r", SCORES, evaluated=False)
        args += [str(run)]
        expect = [f"{run} has no eval results for --split test", f"run `umbenet eval {run}` first"]
    elif case == "empty":
        args += ["--runs-dir", str(runs)]
        expect = [f"no runs found under {runs}/", "umbenet eval"]
    elif case == "none-evaluated":
        run = handmade_run(runs, "r", SCORES, evaluated=False)
        args += ["--runs-dir", str(runs)]
        expect = [f"none of the 1 runs under {runs}/ has eval results", f"run `umbenet eval {run}`"]
    elif case == "not-a-run":
        run = handmade_run(runs, "r", SCORES)
        args += [str(run / "fold1")]
        expect = ["is not a run folder (no run.json)", "pass runs/<name>"]
    elif case == "partial":
        run = handmade_run(runs, "r", SCORES, folds=(1, 2))
        (run / "fold2" / "stage2" / "eval" / "test" / "results.json").unlink()
        args += [str(run)]
        expect = [f"{run} has no eval results for --split test in fold2/stage2", f"umbenet eval {run}"]
    elif case == "missing":
        args += [str(runs / "nope")]
        expect = ["no such run folder"]
    else:
        run = handmade_run(runs, "r", SCORES)
        args += [str(run), "--split", "val"]
        expect = [f"run `umbenet eval {run} --split val` first"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for e in expect:
        assert e in " ".join(err.split()), err
    assert not out.exists()


def test_tiny_backbone_runs_are_flagged_beside_the_paper(tmp_path):
    runs = tmp_path / "runs"
    handmade_run(runs, "tiny-mafw", SCORES, backbone="umbenet/tiny-random-clip")
    out = tmp_path / "r"
    assert main(["report", str(runs / "tiny-mafw"), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    head, rest = md.split("## Runs", 1)
    assert "offline random tiny backbone (umbenet/tiny-random-clip)" in head
    section = rest.split("## Published numbers beside ours")[1]
    assert "tiny-mafw: random tiny backbone; the differences below measure a pipeline check" in section
    assert "| 53.33 | +1.67 |" in section  # still compared: the pipeline check is the point


def test_ten_class_runs_beside_the_papers_ten_class_rows(tmp_path):
    """A run trained without neutral (a true 10-class protocol) is compared by its own scores with
    the paper's 10-class rows; the 11-class run's 10-class comparison uses the authors' rule; a run
    without some other class is compared with nothing."""
    from tests.reporting.helpers import MAFW

    runs = tmp_path / "runs"
    ten = tuple(c for c in MAFW if c != "neutral")
    handmade_run(runs, "mafw-11", {FULL: (0.55, 0.70, 0.50, 0.66)})
    handmade_run(runs, "mafw-10", {FULL: (0.47, 0.62, 0.0, 0.0)}, classes=ten, excluded=("neutral",))
    handmade_run(runs, "mafw-no-contempt", {FULL: (0.47, 0.62, 0.0, 0.0)},
                 classes=tuple(c for c in MAFW if c != "contempt"), excluded=("contempt",))
    out = tmp_path / "report"
    assert main(["report", "--runs-dir", str(runs), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    rows = table_after(md, "Published numbers beside ours")
    r = cmp_row(rows, "mafw-10", "V+A+T", 10, "UMBEnet", "Table 3 block: trained")
    assert r["Scored as"] == "trained without neutral"
    assert (r["UAR ours"], r["UAR paper"], r["Δ UAR"]) == ("47.00", "48.70", "-1.70")
    assert (r["WAR ours"], r["WAR paper"], r["Δ WAR"]) == ("62.00", "63.64", "-1.64")
    r = cmp_row(rows, "mafw-11", "V+A+T", 10, "UMBEnet", "Table 3 block: trained")
    assert r["Scored as"] == "w/o neutral, authors' rule" and r["UAR ours"] == "50.00"
    assert not [r for r in rows if r["Ours"] == "mafw-no-contempt"]
    # Its own Table 3, with its class setting named, the paper's 10-class row beside it.
    t3 = table_after(md, "Table 3 style: modality subsets, mafw, 10 classes (without neutral)")
    i = next(i for i, r in enumerate(t3) if r["Run"] == "mafw-10")
    assert t3[i]["UAR (10 cl., trained without neutral)"] == "47.00"
    assert t3[i + 1]["UAR (10 cl., trained without neutral)"] == "48.70 (Δ -1.70)"
    assert "w/o neutral" not in " ".join(t3[0])  # no neutral class left to leave out
    assert "compared with the paper's 10-class rows" in md
