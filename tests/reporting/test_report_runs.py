"""`umbenet report` on tiny runs trained and evaluated through the CLI: the tables hold the eval
JSON's numbers, the HTML stands alone, the figures load."""
from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from PIL import Image

from tests.reporting.helpers import fmt, fold_results, md_tables, table_after, values
from umbenet_cli.cli import main

SUBSETS = ("V", "A", "T", "V+T", "V+A", "V+A+T", "A+T")


@pytest.fixture(scope="module")
def runs(synthetic_cache, tmp_path_factory):
    """Two one-fold runs of one config (merged into a 2-fold experiment), a 1-stage run, a run with
    another pool size, a run trained on video+text; all evaluated. And one run not evaluated."""
    d = tmp_path_factory.mktemp("runs")
    plan = {"full-1": ["--fold", "1"], "full-2": ["--fold", "2"],
            "one": ["--fold", "1", "--stage", "one"],
            "p8": ["--fold", "1", "--set", "pool.size=8"],
            "vt": ["--fold", "1", "--modalities", "video,text"],
            "noeval": ["--fold", "1", "--stage", "one"]}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: extra threads only contend (several times slower on a busy CPU)
    try:
        for name, extra in plan.items():
            args = ["train", "--cache", str(synthetic_cache), "--runs-dir", str(d), "--preset", "tiny",
                    "--name", name, "--max-steps", "2", *extra]
            if "--stage" not in extra:
                args += ["--stage", "both"]
            assert main(args) == 0
            if name != "noeval":
                assert main(["eval", str(d / name)]) == 0
    finally:
        torch.set_num_threads(threads)
    return d


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r"
    names = ["full-1", "full-2", "one", "p8", "vt"]
    assert main(["report", *(str(runs / n) for n in names), "--out", str(out), "--title", "Tiny check"]) == 0
    return out


def test_table3_numbers_equal_eval_json(runs, report):
    md = (report / "report.md").read_text()
    rows = table_after(md, "Table 3 style")
    full = list(fold_results(runs / "full-1").values()) + list(fold_results(runs / "full-2").values())
    assert [r["fold"] for r in full] == [1, 2]
    name = "full (2 runs)"
    missing = {r["Subset"]: r for r in rows if r["Block"] == "missing-modality inference" and r["Run"] == name}
    assert set(missing) == set(SUBSETS)
    for subset, row in missing.items():
        assert row["Folds"] == "2"
        assert row["UAR (4 cl.)"] == fmt(values(full, subset, "uar"))
        assert row["WAR (4 cl.)"] == fmt(values(full, subset, "war"))
        assert row["UAR (3 cl., w/o neutral, authors' rule)"] == fmt(values(full, subset, "uar_wn"))
        assert row["WAR (3 cl., w/o neutral, authors' rule)"] == fmt(values(full, subset, "war_wn"))
        strict = [next(e for e in r["subsets"] if e["name"] == subset)["without_neutral_strict"]["uar"] for r in full]
        assert row["UAR (3 cl., w/o neutral, strict rule)"] == fmt(strict)
        assert " ± " in row["UAR (4 cl.)"]
    trained = [(r["Subset"], r["Run"]) for r in rows if r["Block"] == "trained on the subset"]
    assert trained == [("V+T", "vt"), ("V+A+T", name), ("V+A+T", "one"), ("V+A+T", "p8")]
    vt = list(fold_results(runs / "vt").values())
    row = next(r for r in rows if r["Run"] == "vt")
    assert row["UAR (4 cl.)"] == fmt(values(vt, "V+T", "uar")) and " ± " not in row["UAR (4 cl.)"]
    # Only the full-modality runs appear in the missing-modality block; vt is not one.
    assert not [r for r in rows if r["Block"] == "missing-modality inference" and r["Run"] == "vt"]
    assert "the neutral row AND column of the confusion matrix are deleted" in md
    assert "strict rule: neutral clips are left out" in md


def test_table4_and_strategy(runs, report):
    md = (report / "report.md").read_text()
    rows = {r["Run"]: r for r in table_after(md, "Table 4 style")}
    assert (rows["p8"]["Size"], rows["full (2 runs)"]["Size"]) == ("8", "6")
    assert rows["one"]["Strategy"] == "1-stage" and rows["full (2 runs)"]["Strategy"] == "2-stage"
    p8 = list(fold_results(runs / "p8").values())
    assert rows["p8"]["WAR (4 cl.)"] == fmt(values(p8, "V+A+T", "war"))
    strategy = table_after(md, "Table 4 style", 1)
    assert [r["Strategy"] for r in strategy] == ["1-stage", "2-stage", "Δ 2-stage − 1-stage"]
    one = values(list(fold_results(runs / "one").values()), "V+A+T", "uar")
    full = values(list(fold_results(runs / "full-1").values()) + list(fold_results(runs / "full-2").values()),
                  "V+A+T", "uar")
    assert strategy[2]["UAR (4 cl.)"] == f"{100 * np.mean(full) - 100 * np.mean(one):+.2f}"


def test_overall_and_per_fold(runs, report):
    md = (report / "report.md").read_text()
    overall = {r["Run"]: r for r in table_after(md, "Tables 1-2 style")}
    assert set(overall) == {"full (2 runs)", "one", "p8", "vt"}
    assert overall["vt"]["Modalities"] == "V+T" and overall["vt"]["Dataset"] == "synthetic"
    detail = table_after(md, "Per-fold scores")
    for name in ("full-1", "full-2", "one", "p8", "vt"):
        for fold, res in fold_results(runs / name).items():
            for e in res["subsets"]:
                row = next(r for r in detail if (r["Run"], r["Fold"], r["Subset"]) == (name, str(fold), e["name"]))
                assert row["UAR"] == f"{100 * e['uar']:.2f}" and row["WAR"] == f"{100 * e['war']:.2f}"
                assert row["Clips"] == str(e["n"]) and row["Stage"] == res["stage"]


def test_notes_and_no_comparison_for_synthetic(report):
    md = (report / "report.md").read_text()
    head = md.split("## Runs")[0]
    assert head.startswith("# Tiny check")
    assert "offline random tiny backbone (umbenet/tiny-random-clip)" in head and "check the pipeline, not the method" in head
    assert "full (2 runs): runs full-1, full-2 have the same options except the fold" in head
    assert "No published counterpart for dataset(s) synthetic" in md
    assert "UMBEnet (paper" not in md


class _Checker(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.external = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a and not str(a[key]).startswith("data:"):
                self.external.append(a[key])
        if tag == "img":
            self.images.append(a["src"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def test_html_is_self_contained(report):
    text = (report / "report.html").read_text()
    assert 'src="http' not in text and 'href="http' not in text and "<script" not in text and "<link" not in text
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.stack == [] and checker.external == []
    pngs = sorted((report / "figures").glob("*.png"))
    assert len(checker.images) == len(pngs) == 4 * 5  # 4 experiments x 5 figures
    for src in checker.images:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert "<table>" in text and "Tiny check" in text


def test_figures_exist_and_load(report):
    md = (report / "report.md").read_text()
    for exp in ("full-2-runs", "one", "p8", "vt"):
        for kind in ("confusion", "curves", "pool_usage", "pool_keys", "features"):
            f = report / "figures" / f"{kind}_{exp}.png"
            with Image.open(f) as im:
                assert im.format == "PNG" and im.size[0] > 300
            assert f"](figures/{f.name})" in md


def test_default_finds_evaluated_runs_and_skips_others(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert f"skipped {runs / 'noeval'}: no eval results" in out and "report written" in out
    md = (tmp_path / "reports" / "report" / "report.md").read_text()
    assert "| noeval |" not in md and "| vt |" in md
    assert json.loads((runs / "vt" / "run.json").read_text())["modalities"] == ["video", "text"]


def test_named_run_without_eval_is_an_error(runs, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["report", str(runs / "vt"), str(runs / "noeval"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{runs / 'noeval'} has no eval results for --split test" in err
    assert f"run `umbenet eval {runs / 'noeval'}` first" in err
    assert not out.exists()
