"""The eval tables: what a reader needs first by default, the rest with --wide, percent said once
in the header, nothing cut at 80 columns (the whole CLI at 80 columns: tests/test_columns.py)."""
from __future__ import annotations

import pytest
from rich.console import Console

from umbenet_cli.evaluation.eval_runs import subset_more_table, subset_table, summary_more_table, summary_table
from umbenet_cli.evaluation.evaluate import fold_summary

MAFW = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt", "anxiety",
        "helplessness", "disappointment")


def entry(name: str, uar: float, war: float) -> dict:
    return {"name": name, "modalities": [], "n": 7, "n_without_input": 1, "uar": uar, "war": war, "uar_classes": 6,
            "without_neutral_authors": {"uar": uar + 0.01, "war": war + 0.01},
            "without_neutral_strict": {"uar": uar - 0.01, "war": war - 0.01}}


def results(dataset: str = "mafw", classes: tuple[str, ...] = MAFW, fold: int = 1, run: str = "runs/demo") -> dict:
    neutral = "neutral" in classes
    return {"run": run, "fold": fold, "stage": "stage2", "split": "test", "dataset": dataset,
            "classes": list(classes), "excluded_classes": [] if neutral else ["neutral"], "n_clips": 8,
            "rule_without_neutral": "authors' rule ..." if neutral else None,
            "subsets": [entry("V", 0.1429, 0.2), entry("V+A+T", 0.4567, 0.5)]}


def render(table, width: int = 80) -> tuple[list[str], str]:
    """(the header's column titles, the whole text) of ``table`` printed at ``width`` columns."""
    console = Console(width=width, record=True)
    console.print(table)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    return [str(c.header) for c in table.columns], text


def test_default_table_for_mafw_has_the_authors_ten_class_pair():
    cols, text = render(subset_table(results()))
    assert cols == ["subset", "clips", "UAR %", "WAR %", "UAR % w/o neutral", "WAR % w/o neutral"]
    rows = [line for line in text.splitlines() if "V+A+T" in line]
    assert rows and all(cell in rows[0] for cell in ("45.67", "50.00", "46.67", "51.00"))  # authors' pair
    assert "44.67" not in text  # the strict rule's UAR is for --wide
    body = text.split("┡")[1].split("└")[0]
    assert "%" not in body  # percent is said in the header, not in each cell
    flat = " ".join(text.split())
    assert "w/o neutral: authors' rule, the 10-class score the paper reports" in flat
    assert "more columns: --wide" in flat


def test_wide_table_holds_the_other_columns():
    cols, text = render(subset_more_table(results()))
    assert cols == ["subset", "left out (no input)", "UAR classes", "UAR % w/o neutral (strict rule)",
                    "WAR % w/o neutral (strict rule)"]
    assert "44.67" in text and "49.00" in text
    _, default = render(subset_table(results(), wide=True))
    assert "--wide" not in default  # already asked for


def test_ten_class_protocol_run_has_no_pair():
    ten = tuple(c for c in MAFW if c != "neutral")
    cols, text = render(subset_table(results(classes=ten)))
    assert cols == ["subset", "clips", "UAR %", "WAR %"] and "w/o neutral" not in text
    more, _ = render(subset_more_table(results(classes=ten)))
    assert more == ["subset", "left out (no input)", "UAR classes"]


def test_other_datasets_with_neutral_keep_both_rules_for_wide():
    dfew = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
    cols, _ = render(subset_table(results(dataset="dfew", classes=dfew)))
    assert cols == ["subset", "clips", "UAR %", "WAR %"]
    more, _ = render(subset_more_table(results(dataset="dfew", classes=dfew)))
    assert more[3:] == ["UAR % w/o neutral (authors' rule)", "WAR % w/o neutral (authors' rule)",
                        "UAR % w/o neutral (strict rule)", "WAR % w/o neutral (strict rule)"]


def test_fold_summary_tables():
    folds = [results(fold=k) for k in (1, 2, 3)]
    summary = fold_summary(folds)
    cols, text = render(summary_table("demo", summary, folds[0], ["stage2"] * 3))
    assert cols == ["subset", "UAR %", "WAR %", "UAR % w/o neutral", "WAR % w/o neutral"]
    assert "45.67 ± 0.00" in text and "%" not in text.split("┡")[1].split("└")[0]
    more, text = render(summary_more_table("demo", summary, folds[0]))
    assert more == ["subset", "clips per fold", "UAR % w/o neutral (strict rule)", "WAR % w/o neutral (strict rule)"]
    assert "7 / 7 / 7" in text


@pytest.mark.parametrize("width", [60, 80])
def test_long_run_names_fold_rather_than_cut(width):
    long = "runs/" + "a-run-name-far-longer-than-any-terminal-line-" * 3
    for table in (subset_table(results(run=long)), subset_more_table(results(run=long))):
        _, text = render(table, width)
        assert "".join(text.split()).count("a-run-name-far-longer") == 3
