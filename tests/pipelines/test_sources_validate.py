"""Shared validation: record contract, problems table, stop/skip policy."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from pipelines.sources import ClipRecord, Problem, ScanError, SourceScan, apply_policy, problems_table
from pipelines.sources.validate import assign_folds, dedupe


def record(clip_id: str, tmp_path: Path, **kw) -> ClipRecord:
    path = tmp_path / f"{clip_id}.mp4"
    path.write_bytes(b"")
    fields = dict(clip_id=clip_id, media_path=path, media_kind="video", label=0, text=None,
                  text_source="none", fold=1, split=None)
    return ClipRecord(**{**fields, **kw})


def scan_with(tmp_path: Path, problems: list[Problem]) -> SourceScan:
    records = [record(c, tmp_path) for c in ("a", "b", "c")]
    return SourceScan("toy", ("x", "y"), records, problems, "5-fold")


def test_record_contract_refuses_filler_text(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty text must be None"):
        record("a", tmp_path, text="  ", text_source="annotation")
    with pytest.raises(ValueError, match="annotation"):
        record("a", tmp_path, text=None, text_source="annotation")
    with pytest.raises(ValueError, match="annotation"):
        record("a", tmp_path, text="hi", text_source="asr")
    with pytest.raises(ValueError, match="media_kind"):
        record("a", tmp_path, media_kind="audio")


def test_stop_raises_on_errors_only(tmp_path: Path) -> None:
    warn = scan_with(tmp_path, [Problem("a", "missing-text", "no caption")])
    assert apply_policy(warn, "stop").records == warn.records
    bad = scan_with(tmp_path, [Problem("b", "absent-on-disk", "gone"), Problem("a", "missing-text", "x")])
    with pytest.raises(ScanError, match="(?s)1 problems.*absent-on-disk: 1.*drop the 1 affected"):
        apply_policy(bad, "stop")


def test_skip_drops_records_with_errors(tmp_path: Path) -> None:
    problems = [Problem("b", "unknown-label", "?"), Problem("c", "label-mismatch", "kept"),
                Problem(None, "missing-split-list", "no test.txt")]
    scan = scan_with(tmp_path, problems)
    kept = apply_policy(scan, "skip")
    assert [r.clip_id for r in kept.records] == ["a", "c"]
    assert kept.problems == problems and len(scan.records) == 3  # the input is untouched
    everything = scan_with(tmp_path, [Problem(c, "absent-on-disk", "") for c in "abc"])
    with pytest.raises(ScanError, match="no usable clips"):
        apply_policy(everything, "skip")
    with pytest.raises(ValueError, match="stop"):
        apply_policy(scan, "ignore")


def test_problems_table_groups_by_kind(tmp_path: Path) -> None:
    problems = [Problem(str(i), "absent-on-disk", f"no file {i}") for i in range(5)]
    problems += [Problem("a", "missing-text", "no caption")]
    table = problems_table(scan_with(tmp_path, problems), examples=2)
    out = io.StringIO()
    Console(file=out, width=200).print(table)
    text = out.getvalue()
    assert "absent-on-disk" in text and "5" in text and "... and 3 more" in text
    assert "0: no file 0" in text and "2: no file 2" not in text
    assert text.index("absent-on-disk") < text.index("missing-text")  # errors first
    assert "1 warnings" in text and "5 errors" in text


def test_dedupe_and_assign_folds() -> None:
    first, problems = dedupe([("a", 1, "f:1"), ("a", 1, "f:2"), ("b", 1, "f:3"), ("b", 2, "f:4")])
    assert first == {"a": 1, "b": 1}
    assert [(p.clip_id, p.kind) for p in problems] == [("a", "duplicate-line"), ("b", "duplicate-id")]
    lists = {1: ({"b"}, {"a"}), 2: ({"a"}, {"b", "a"}), 3: (None, None)}
    folds, problems = assign_folds(["a", "b", "c"], lists)
    assert folds == {"a": None, "b": 2, "c": None}
    details = {p.clip_id: p.detail for p in problems}
    assert "folds [1, 2]" in details["a"] and "train and test lists of fold(s) [2]" in details["a"]
    assert "no fold's test list (test lists of folds [3] are missing)" in details["c"]
    assert "b" not in details
