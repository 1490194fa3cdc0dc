"""Manifest adapter: CSV manifests (class names or indices) and the DFER list format."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.sources import ScanError, scan_manifest

CLASSES = ("calm", "joy", "anger")


def media(root: Path, *names: str, frames: bool = False) -> None:
    for name in names:
        path = root / name
        if frames:
            path.mkdir(parents=True, exist_ok=True)
            (path / "0001.jpg").write_bytes(b"")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")


def test_csv_with_class_names_text_and_splits(tmp_path: Path) -> None:
    media(tmp_path, "v/a.mp4", "v/b.mp4", "v/c d.mp4")
    media(tmp_path, "frames/é1", frames=True)
    (tmp_path / "m.csv").write_text(
        "Path,Label,Text,Split\n"
        "v/a.mp4,joy,A man grins.,train\n"
        "v/b.mp4,ANGER,,val\n"
        "v/c d.mp4,calm,NA,test\n"
        "frames/é1,calm,None,Test\n",
        encoding="utf-8",
    )
    scan = scan_manifest(tmp_path / "m.csv", classes=CLASSES)
    assert scan.problems == [] and scan.protocol == "train/test" and scan.classes == CLASSES
    by_id = {r.clip_id: r for r in scan.records}
    assert [by_id[c].label for c in ("v/a.mp4", "v/b.mp4", "v/c d.mp4", "frames/é1")] == [1, 2, 0, 0]
    assert by_id["v/a.mp4"].text == "A man grins." and by_id["v/a.mp4"].text_source == "annotation"
    assert by_id["v/b.mp4"].text is None and by_id["v/b.mp4"].text_source == "none"
    assert by_id["v/c d.mp4"].text == "NA"  # literal text is text, not a missing value
    assert by_id["v/b.mp4"].split == "val" and by_id["frames/é1"].split == "test"
    assert by_id["frames/é1"].media_kind == "frames" and by_id["v/a.mp4"].media_kind == "video"
    assert by_id["v/a.mp4"].media_path == tmp_path / "v/a.mp4"


def test_csv_with_indices_folds_and_base_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    media(data, "x.mp4", "y.mp4", "z.mp4")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "folds.csv").write_text("fold,label,path\n1,0,x.mp4\n2,2,y.mp4\n3,1,z.mp4\n")
    scan = scan_manifest(lists / "folds.csv", classes=list(CLASSES), base_dir=data)
    assert scan.problems == [] and scan.protocol == "3-fold"
    assert {r.clip_id: (r.label, r.fold) for r in scan.records} == {
        "x.mp4": (0, 1), "y.mp4": (2, 2), "z.mp4": (1, 3)}


def test_classes_txt_next_to_manifest(tmp_path: Path) -> None:
    media(tmp_path, "a.mp4")
    (tmp_path / "m.csv").write_text("path,label\na.mp4,anger\n")
    (tmp_path / "classes.txt").write_text("# label order\ncalm\njoy\nanger\n")
    scan = scan_manifest(tmp_path / "m.csv")
    assert scan.classes == CLASSES and scan.records[0].label == 2 and scan.protocol == "unsplit"


def test_missing_class_list_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,label\na.mp4,anger\n")
    with pytest.raises(ScanError, match="(?s)no class list.*classes=.*--classes.*classes.txt"):
        scan_manifest(tmp_path / "m.csv")
    with pytest.raises(ValueError, match="not a set"):
        scan_manifest(tmp_path / "m.csv", classes={"anger", "calm"})
    with pytest.raises(ScanError, match="more than once"):
        scan_manifest(tmp_path / "m.csv", classes=("anger", "Anger"))


def test_csv_without_header_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("a.mp4,anger\n")
    with pytest.raises(ScanError, match="header row with 'path' and 'label'"):
        scan_manifest(tmp_path / "m.csv", classes=CLASSES)


def test_csv_problems(tmp_path: Path) -> None:
    media(tmp_path, "a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4")
    (tmp_path / "m.csv").write_text(
        "path,label,split\n"
        "a.mp4,joy,train\n"
        "a.mp4,joy,train\n"      # exact duplicate: one problem, one record
        "b.mp4,joy,train\n"
        "b.mp4,calm,train\n"     # same id, another label
        "c.mp4,sorrow,train\n"   # not a class
        "d.mp4,7,test\n"         # index out of range
        "e.mp4,joy,holdout\n"    # not a split
        "gone.mp4,joy,test\n"    # not on disk
    )
    scan = scan_manifest(tmp_path / "m.csv", classes=CLASSES)
    got = sorted((p.kind, p.clip_id) for p in scan.problems)
    assert got == [("absent-on-disk", "gone.mp4"), ("bad-value", "e.mp4"), ("duplicate-id", "b.mp4"),
                   ("duplicate-line", "a.mp4"), ("unknown-label", "c.mp4"), ("unknown-label", "d.mp4")]
    assert [r.clip_id for r in scan.records].count("a.mp4") == 1


def test_list_format(tmp_path: Path) -> None:
    media(tmp_path, "clips/001", "clips/with space/002", "clips/日本/003", frames=True)
    (tmp_path / "train_list.txt").write_text(
        "clips/001 16 2\nclips/with space/002 40 0\n", encoding="utf-8")
    (tmp_path / "test_list.txt").write_text("clips/日本/003 8 1\n", encoding="utf-8")
    scan = scan_manifest([tmp_path / "train_list.txt", tmp_path / "test_list.txt"], classes=CLASSES)
    assert scan.problems == [] and scan.protocol == "train/test"
    by_id = {r.clip_id: r for r in scan.records}
    assert by_id["clips/001"].listed_frames == 16 and by_id["clips/001"].label == 2
    assert by_id["clips/with space/002"].split == "train" and by_id["clips/日本/003"].split == "test"
    assert {r.media_kind for r in scan.records} == {"frames"}
    assert {r.text_source for r in scan.records} == {"none"}


def test_list_format_problems_and_split_argument(tmp_path: Path) -> None:
    media(tmp_path, "f/1", "f/2", frames=True)
    (tmp_path / "list.txt").write_text("f/1 16 0\nf/2 abc 0\nf/1 16 0\nf/3 10 9\n")
    scan = scan_manifest(tmp_path / "list.txt", classes=CLASSES, split="val")
    got = sorted((p.kind, p.clip_id) for p in scan.problems)
    assert got == [("bad-line", None), ("duplicate-line", "f/1"), ("unknown-label", "f/3")]
    assert [(r.clip_id, r.split) for r in scan.records] == [("f/1", "val")]


def test_asr_text_for_videos_only(tmp_path: Path) -> None:
    media(tmp_path, "a.mp4")
    media(tmp_path, "fr", frames=True)
    (tmp_path / "m.csv").write_text("path,label,text\na.mp4,0,hello\nfr,1,\n")
    scan = scan_manifest(tmp_path / "m.csv", classes=CLASSES, text="asr")
    assert {r.clip_id: (r.text, r.text_source) for r in scan.records} == {
        "a.mp4": (None, "asr"), "fr": (None, "none")}
