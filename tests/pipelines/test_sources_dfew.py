"""DFEW adapter on small mimic trees: split CSVs, raw clips or frame folders."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.sources import ScanError, apply_policy, scan_dfew
from umbenet_cli.data.classes import DFEW_CLASSES

# id -> 1-based label (1 Happy ... 7 Fear)
LABELS = {"00001": 1, "00002": 3, "00107": 7, "02522": 4, "10034": 2, "11000": 5, "12345": 6,
          "00480": 3, "03003": 1, "16372": 7}
FOLD = {clip: i % 5 + 1 for i, clip in enumerate(LABELS)}


def make_dfew(
    root: Path,
    *,
    clips: bool = True,
    frames: bool = True,
    padded: bool = True,
    header: str = "video_name,label",
    labels: dict[str, int] | None = None,
) -> Path:
    """Write a mimic DFEW release; ``padded=False`` writes ids as plain numbers (2522)."""
    labels = dict(LABELS if labels is None else labels)
    split = root / "EmoLabel_DataSplit"
    for part in ("train(single-labeled)", "test(single-labeled)"):
        (split / part).mkdir(parents=True)
        for k in range(1, 6):
            members = [c for c in labels if (FOLD[c] == k) == part.startswith("test")]
            rows = [header] + [f"{c if padded else int(c)},{labels[c]}" for c in members]
            (split / part / f"set_{k}.csv").write_text("\n".join(rows) + "\n")
    for clip in labels:
        if clips:
            (root / "Clip" / "original").mkdir(parents=True, exist_ok=True)
            (root / "Clip" / "original" / f"{clip}.mp4").write_bytes(b"")
        if frames:
            folder = root / "Clip" / "clip_224x224" / clip
            folder.mkdir(parents=True)
            (folder / "00001.jpg").write_bytes(b"")
    return root


def test_happy_path_clips(tmp_path: Path) -> None:
    scan = scan_dfew(make_dfew(tmp_path / "dfew"))
    assert scan.problems == []
    assert scan.protocol == "5-fold" and scan.classes == DFEW_CLASSES
    by_id = {r.clip_id: r for r in scan.records}
    assert {c: (r.label, r.fold) for c, r in by_id.items()} == {
        c: (LABELS[c] - 1, FOLD[c]) for c in LABELS}
    assert DFEW_CLASSES[by_id["02522"].label] == "angry"
    assert DFEW_CLASSES[by_id["00107"].label] == "fear"
    r = by_id["02522"]
    assert r.media_kind == "video" and r.media_path.name == "02522.mp4" and r.text_source == "asr"
    assert r.text is None


def test_frames_when_no_clips_and_when_asked(tmp_path: Path) -> None:
    scan = scan_dfew(make_dfew(tmp_path / "a", clips=False))
    assert {r.media_kind for r in scan.records} == {"frames"}
    assert {r.text_source for r in scan.records} == {"none"}
    assert scan.records[0].media_path.is_dir()
    forced = scan_dfew(make_dfew(tmp_path / "b"), media="frames")
    assert {r.media_kind for r in forced.records} == {"frames"} and forced.problems == []


def test_ids_read_as_ints_are_zero_padded(tmp_path: Path) -> None:
    scan = scan_dfew(make_dfew(tmp_path / "dfew", padded=False, header="Video_Name, Label"))
    assert scan.problems == []
    assert {r.clip_id for r in scan.records} == set(LABELS)
    assert {r.clip_id: r.media_path.name for r in scan.records}["00107"] == "00107.mp4"


def test_missing_media_choices(tmp_path: Path) -> None:
    root = make_dfew(tmp_path / "dfew", clips=False)
    with pytest.raises(ScanError, match="original.*media='frames'"):
        scan_dfew(root, media="clips")
    shutil.rmtree(root / "Clip")
    with pytest.raises(ScanError, match="clip_224x224"):
        scan_dfew(root)
    with pytest.raises(ValueError, match="frames"):
        scan_dfew(root, media="audio")


def test_missing_split_lists_are_fatal(tmp_path: Path) -> None:
    root = make_dfew(tmp_path / "dfew")
    shutil.rmtree(root / "EmoLabel_DataSplit" / "test(single-labeled)")
    with pytest.raises(ScanError, match=r"test\(single-labeled\)"):
        scan_dfew(root)
    shutil.rmtree(root / "EmoLabel_DataSplit")
    with pytest.raises(ScanError, match="EmoLabel_DataSplit"):
        scan_dfew(root)


def test_problems_detected(tmp_path: Path) -> None:
    root = make_dfew(tmp_path / "dfew")
    split = root / "EmoLabel_DataSplit"
    # 00002 (fold 2) gets another label in fold 1's train list; 00480 an unknown label everywhere
    path = split / "train(single-labeled)" / "set_1.csv"
    path.write_text(path.read_text().replace("00002,3", "00002,5"))
    for csv in split.glob("*/set_*.csv"):
        csv.write_text(csv.read_text().replace("00480,3", "00480,9"))
    # 03003 listed twice in one file with different labels; 12345 twice identically
    path = split / "test(single-labeled)" / "set_4.csv"
    path.write_text(path.read_text() + "03003,2\n")
    path = split / "test(single-labeled)" / "set_2.csv"
    path.write_text(path.read_text() + "12345,6\n")
    # 16372 removed from fold 5's test list: in no test list, and in neither list of fold 5
    path = split / "test(single-labeled)" / "set_5.csv"
    path.write_text(path.read_text().replace("16372,7\n", ""))
    (root / "Clip" / "original" / "10034.mp4").unlink()
    (split / "train(single-labeled)" / "set_3.csv").unlink()

    scan = scan_dfew(root)
    by_kind: dict[str, set] = {}
    for p in scan.problems:
        by_kind.setdefault(p.kind, set()).add(p.clip_id)
    assert by_kind["conflicting-labels"] == {"00002"}
    assert by_kind["unknown-label"] == {"00480"}
    assert by_kind["duplicate-id"] == {"03003"}
    assert by_kind["duplicate-line"] == {"12345"}
    assert by_kind["inconsistent-folds"] == {"16372"}
    assert by_kind["absent-on-disk"] == {"10034"}
    assert by_kind["missing-split-list"] == {None}
    assert "00480" not in {r.clip_id for r in scan.records}
    assert {r.clip_id: r.label for r in scan.records}["00002"] == 2  # the test list's label

    with pytest.raises(ScanError, match="conflicting-labels"):
        apply_policy(scan, "stop")
    kept = apply_policy(scan, "skip")
    assert {r.clip_id for r in kept.records} == set(LABELS) - {"00002", "00480", "03003", "16372", "10034"}
    assert kept.problems == scan.problems


def test_empty_frame_folder(tmp_path: Path) -> None:
    root = make_dfew(tmp_path / "dfew", clips=False)
    (root / "Clip" / "clip_224x224" / "00001" / "00001.jpg").unlink()
    scan = scan_dfew(root)
    assert [(p.clip_id, p.kind) for p in scan.problems] == [("00001", "empty-media")]
