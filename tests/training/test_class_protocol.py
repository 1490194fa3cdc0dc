"""MAFW's 10-class protocol from the 11-class cache: `umbenet train --exclude-classes neutral`
trains, validates and tests without the neutral clips, with 10 class prompts; eval, report and
predict follow the run; bad class names exit 2."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from umbenet_cli.cli import main
from umbenet_cli.data.cache_io import read_features
from umbenet_cli.data.classes import MAFW_CLASSES

TEN = [c for c in MAFW_CLASSES if c != "neutral"]
SAMPLE_CLIPS = Path(__file__).resolve().parents[2] / "sample_data" / "mafw" / "clips"


@pytest.fixture(scope="module")
def ten_class_run(sample_cache, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "--cache", str(sample_cache), "--runs-dir", str(runs), "--preset", "tiny", "--name", "ten",
                 "--fold", "2", "--stage", "both", "--max-steps", "2", "--exclude-classes", "Neutral"]) == 0
    assert main(["eval", str(runs / "ten")]) == 0
    return runs / "ten"


def test_run_records_ten_classes(ten_class_run):
    from umbenet_cli.model.umbenet import UMBEnet

    assert json.loads((ten_class_run / "run.json").read_text())["exclude_classes"] == ["neutral"]
    assert json.loads((ten_class_run / "classes.json").read_text()) == TEN
    for stage in ("stage1", "stage2"):
        for which in ("best", "last"):
            model = UMBEnet.load(ten_class_run / "fold2" / stage / "checkpoints" / which)
            assert list(model.config.classes) == TEN
            assert model.class_prompts.prefix.shape[0] == 10  # one class prompt per kept class


def test_no_neutral_clip_trains_validates_or_tests(ten_class_run, sample_cache):
    from umbenet_cli.data.class_subset import exclude_classes
    from umbenet_cli.training.data import make_splits

    full = read_features(sample_cache)
    neutral_ids = {c for c, y in zip(full.clip_ids, full.labels) if MAFW_CLASSES[y] == "neutral"}
    assert neutral_ids
    table = exclude_classes(full, ["neutral"])
    assert list(table.spec.classes) == TEN and len(table) == len(full) - len(neutral_ids)
    # Labels renumbered in the cache's order: each clip keeps its class name.
    names = {c: MAFW_CLASSES[y] for c, y in zip(full.clip_ids, full.labels)}
    assert all(TEN[y] == names[c] for c, y in zip(table.clip_ids, table.labels))
    splits = make_splits(table, 2, 0.1, 0)
    used = {table.clip_ids[i] for part in (splits.train, splits.val, splits.test) for i in part}
    assert not used & neutral_ids
    res_dir = ten_class_run / "fold2" / "stage2" / "eval" / "test"
    results = json.loads((res_dir / "results.json").read_text())
    assert results["classes"] == TEN and results["excluded_classes"] == ["neutral"]
    assert results["rule_without_neutral"] is None  # no neutral class left to leave out
    for e in results["subsets"]:
        assert np.array(e["confusion"]).shape == (10, 10) and len(e["per_class_recall"]) == 10
        assert "without_neutral_authors" not in e
    with open(res_dir / "predictions.csv") as fh:
        preds = list(csv.DictReader(fh))
    assert preds and not {p["clip_id"] for p in preds} & neutral_ids
    assert all(0 <= int(p["pred_V+A+T"]) < 10 for p in preds)
    assert {c for c in full.clip_ids[full.folds == 2]} - neutral_ids == {p["clip_id"] for p in preds}


def test_metrics_and_report_follow_the_run(ten_class_run, tmp_path):
    metrics = [json.loads(x) for x in (ten_class_run / "fold2" / "stage1" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and 0.0 <= metrics[-1]["val"]["uar"] <= 1.0
    out = tmp_path / "report"
    assert main(["report", str(ten_class_run), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "Table 3 style: modality subsets, mafw, 10 classes (without neutral)" in md
    assert "UAR (10 cl., trained without neutral)" in md


def test_predict_uses_the_runs_classes(ten_class_run, tmp_path):
    out = tmp_path / "p.json"
    assert main(["predict", str(SAMPLE_CLIPS / "00001.mp4"), "--run", str(ten_class_run), "--fold", "2",
                 "--no-asr", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["classes"] == TEN and list(data["videos"][0]["probabilities"]) == TEN


@pytest.mark.parametrize("value,message", [
    ("calm", "['calm'] not among the cache's classes"),
    ("neutral,calm", "['calm'] not among the cache's classes"),
    (",".join(MAFW_CLASSES[1:]), "a classifier needs at least 2 classes"),
])
def test_bad_class_names_exit_2(sample_cache, tmp_path, capsys, value, message):
    rc = main(["train", "--cache", str(sample_cache), "--runs-dir", str(tmp_path), "--preset", "tiny",
               "--fold", "2", "--exclude-classes", value])
    assert rc == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "sample-tiny").exists() and not list(tmp_path.iterdir())


def test_eval_on_a_cache_without_the_excluded_class(ten_class_run, tmp_path, capsys):
    from umbenet_cli.data.synthetic import SyntheticSpec, write_synthetic_cache
    from umbenet_cli.model import load_backbone

    other = write_synthetic_cache(tmp_path / "c", SyntheticSpec(classes=("x", "y", "z"), clips_per_class=5),
                                  "umbenet/tiny-random-clip", load_backbone("umbenet/tiny-random-clip").fingerprint())
    assert main(["eval", str(ten_class_run), "--cache", str(other)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "the run was trained without ['neutral']" in err and "not among the cache's classes" in err
