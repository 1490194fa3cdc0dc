"""The demo's learning part (benchmarks/controlled/demo_learning.py): the tiny model on a synthetic
cache, each subset's UAR/WAR beside chance and the Bayes-optimal figure, labelled for what it is."""
from __future__ import annotations

import io
import json

import numpy as np
from rich.console import Console

from tests.benchmark_scripts import load_script

def test_demo_learning_prints_scores_beside_chance_and_bayes(tmp_path):
    demo = load_script("demo_learning")
    buf = io.StringIO()
    result = demo.run_demo(tmp_path, clips_per_class=10, epochs=1, console=Console(file=buf, width=80))
    text = buf.getvalue()
    assert "NOT emotion recognition" in text and "Bayes" in text and "chance" in text.lower()
    assert max(len(line) for line in text.splitlines()) <= 80  # readable in an 80-column terminal
    saved = json.loads((tmp_path / "learning.json").read_text())
    assert saved["subsets"] == result["subsets"]
    assert list(result["subsets"]) == ["V", "A", "T", "V+T", "V+A", "V+A+T", "A+T"]
    evaluated = json.loads((tmp_path / "runs" / "synthetic-tiny" / "fold1" / "stage2" / "eval" / "test"
                            / "results.json").read_text())
    for e in evaluated["subsets"]:
        row = result["subsets"][e["name"]]
        assert (row["n"], row["uar"], row["war"]) == (e["n"], e["uar"], e["war"])  # the eval's own numbers
        assert row["chance_uar"] == 1 / 6 and 0 < row["bayes_uar"] <= 1
        assert f"{100 * row['bayes_uar']:.1f}" in text
    # Bayes with every modality beats Bayes with audio alone (audio carries the least information)
    assert result["subsets"]["V+A+T"]["bayes_uar"] > result["subsets"]["A"]["bayes_uar"]
    assert (tmp_path / "learning.log").read_text().count("epoch") >= 2
    assert np.isfinite(result["seconds_train_eval"])
