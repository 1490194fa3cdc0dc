"""umbenet eval on tiny trained runs: every subset, --drop, files written, bad input."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from umbenet_cli.cli import main


@pytest.fixture(scope="module")
def run_all_folds(synthetic_cache, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "--cache", str(synthetic_cache), "--runs-dir", str(runs), "--preset", "tiny",
                 "--name", "r", "--fold", "all", "--stage", "one", "--max-steps", "3"]) == 0
    return runs / "r"


def test_every_subset_written_and_consistent(run_all_folds, capsys):
    assert main(["eval", str(run_all_folds)]) == 0
    out = capsys.readouterr().out
    assert "mean ± std over 5 fold(s)" in out and "V+A+T" in out
    res_dir = run_all_folds / "fold3" / "onestage" / "eval" / "test"
    results = json.loads((res_dir / "results.json").read_text())
    assert [s["name"] for s in results["subsets"]] == ["V", "A", "T", "V+T", "V+A", "V+A+T", "A+T"]
    classes = results["classes"]
    with open(res_dir / "predictions.csv") as fh:
        preds = list(csv.DictReader(fh))
    assert len(preds) == results["n_clips"]
    for entry in results["subsets"]:
        assert entry["n"] + entry["n_without_input"] == results["n_clips"]
        y = np.array([int(p["label"]) for p in preds])
        p = np.array([int(p[f"pred_{entry['name']}"]) for p in preds])
        keep = p >= 0
        assert keep.sum() == entry["n"]
        # The scores agree with scikit-learn on the written predictions.
        assert entry["war"] == pytest.approx(accuracy_score(y[keep], p[keep]))
        assert entry["uar"] == pytest.approx(balanced_accuracy_score(y[keep], p[keep]))
        assert np.array(entry["confusion"]).sum() == entry["n"]
        for suffix in ("", "_norm"):
            assert Image.open(res_dir / f"confusion_{entry['name']}{suffix}.png").size[0] > 300
        assert (res_dir / f"confusion_{entry['name']}.csv").read_text().startswith("true\\pred")
    text_only = next(e for e in results["subsets"] if e["name"] == "T")
    neutral = classes.index("neutral")
    assert text_only["n_without_input"] >= sum(int(p["label"]) == neutral for p in preds)  # neutral has no text
    # Without neutral, both rules, each under its own key, checked on the written predictions.
    assert "row AND column" in results["rules"]["without_neutral_authors"]
    assert "counts as an error" in results["rules"]["without_neutral_strict"]
    full = next(e for e in results["subsets"] if e["name"] == "V+A+T")
    y = np.array([int(p["label"]) for p in preds])
    p = np.array([int(p["pred_V+A+T"]) for p in preds])
    strict, authors = y != neutral, (y != neutral) & (p != neutral)
    assert full["without_neutral_strict"]["war"] == pytest.approx(accuracy_score(y[strict], p[strict]))
    assert full["without_neutral_authors"]["war"] == pytest.approx(accuracy_score(y[authors], p[authors]))
    assert full["uar_classes"] == len(set(y.tolist()))
    with open(res_dir / "results.csv") as fh:
        header = next(csv.reader(fh))
    assert {"uar_without_neutral_authors", "war_without_neutral_strict"} <= set(header)
    with open(res_dir / "results.csv") as fh:  # the CSV says its units, on every row
        csv_rows = list(csv.DictReader(fh))
    assert header[-1] == "units" and all("fractions of 1" in r["units"] for r in csv_rows)
    assert [float(r["uar"]) for r in csv_rows] == pytest.approx([e["uar"] for e in results["subsets"]])
    assert (res_dir / "confusion_V+A+T_without_neutral.csv").read_text().count("\n") == len(classes)  # header + 3 rows
    # Not MAFW: no pair without neutral in the default table (--wide has both rules); the rules are printed.
    assert "UAR %" in out and "more columns: --wide" in out and "strict rule: neutral clips are left out" in out
    summary = json.loads((run_all_folds / "eval-test.json").read_text())
    assert summary["folds"] == [1, 2, 3, 4, 5] and len(summary["subsets"]) == 7
    # Each number says what it is: mean, sample std, the per-fold values and each fold's n.
    row = summary["subsets"][0]
    assert row["fold_ids"] == [1, 2, 3, 4, 5] and len(row["n"]) == 5 and "fractions" in summary["units"]
    assert row["uar"]["mean"] == pytest.approx(np.mean(row["uar"]["per_fold"]))
    assert row["uar"]["std"] == pytest.approx(np.std(row["uar"]["per_fold"], ddof=1))
    assert summary["checkpoint"] == "best" and results["units"] == summary["units"]
    assert all(p["label_name"] == classes[int(p["label"])] for p in preds)  # predictions.csv has class names
    assert all(p["pred_V+A+T_name"] == classes[int(p["pred_V+A+T"])] for p in preds)
    with np.load(res_dir / "features.npz") as f:
        assert f["inputs"].shape[0] == f["fused"].shape[0] == results["n_clips"]


def test_drop_evaluates_one_subset(run_all_folds):
    assert main(["eval", str(run_all_folds / "fold1" / "onestage"), "--drop", "audio"]) == 0
    results = json.loads((run_all_folds / "fold1" / "onestage" / "eval" / "test-drop-audio" / "results.json").read_text())
    assert [s["name"] for s in results["subsets"]] == ["V+T"] and results["dropped"] == ["audio"]


@pytest.mark.parametrize("args,message", [
    (["--drop", "smell"], "unknown modality ['smell']"),
    (["--drop", "video,audio,text"], "leaves no modality"),
    (["--split", "train"], "choose test or val"),
])
def test_bad_options(run_all_folds, capsys, args, message):
    assert main(["eval", str(run_all_folds), *args]) == 2
    assert message in capsys.readouterr().err


def test_run_without_checkpoint(tmp_path, capsys):
    (tmp_path / "r" / "fold1" / "stage1" / "checkpoints").mkdir(parents=True)
    (tmp_path / "r" / "run.json").write_text("{}")
    assert main(["eval", str(tmp_path / "r" / "fold1" / "stage1")]) == 2
    assert "no complete 'best' checkpoint" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_cache_with_another_class_list(run_all_folds, tmp_path, capsys):
    from umbenet_cli.data.synthetic import SyntheticSpec, write_synthetic_cache
    from umbenet_cli.model import load_backbone

    other = write_synthetic_cache(tmp_path / "c", SyntheticSpec(classes=("x", "y", "z", "w"), clips_per_class=5),
                                  "umbenet/tiny-random-clip", load_backbone("umbenet/tiny-random-clip").fingerprint())
    assert main(["eval", str(run_all_folds / "fold1" / "onestage"), "--cache", str(other)]) == 2
    assert "are not the model's" in capsys.readouterr().err
