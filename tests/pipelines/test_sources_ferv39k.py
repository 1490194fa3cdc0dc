"""FERV39k adapter on small mimic trees: space-separated split lists, face and scene frames."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.sources import ScanError, apply_policy, scan_ferv39k
from umbenet_cli.data.classes import FERV39K_CLASSES

TRAIN = ["Crime/Angry/0063 Angry", "Crime/Happy/0001 Happy", "Daily Life/Sad/0102 Sad",
         "Talk Show/Neutral/0007 Neutral"]
TEST = ["Crime/Fear/0010 Fear", "Party/Surprise/0042 Surprise", "Party/Disgust/0003 Disgust"]


def make_ferv(root: Path, *, train=TRAIN, test=TEST, scenes: bool = True) -> Path:
    lists = root / "4_setups" / "All_scenes"
    lists.mkdir(parents=True)
    (lists / "train_All.csv").write_text("\n".join(train) + "\n")
    (lists / "test_All.csv").write_text("\n".join(test) + "\n")
    for line in [*train, *test]:
        clip = line.rsplit(" ", 1)[0]
        for top in ("2_ClipsforFaceCrop", *(("3_ClipsforScenImages",) if scenes else ())):
            (root / top / clip).mkdir(parents=True, exist_ok=True)
            (root / top / clip / "1.jpg").write_bytes(b"")
    return root


def test_happy_path(tmp_path: Path) -> None:
    scan = scan_ferv39k(make_ferv(tmp_path / "ferv"))
    assert scan.problems == []
    assert scan.protocol == "train/test" and scan.classes == FERV39K_CLASSES
    by_id = {r.clip_id: r for r in scan.records}
    assert len(by_id) == len(TRAIN) + len(TEST)
    r = by_id["Crime/Angry/0063"]
    assert FERV39K_CLASSES[r.label] == "angry" and r.split == "train" and r.fold is None
    assert r.media_kind == "frames" and r.media_path.is_dir() and r.scene_path.is_dir()
    assert r.text is None and r.text_source == "none"
    assert by_id["Daily Life/Sad/0102"].label == FERV39K_CLASSES.index("sad")  # spaces in ids
    assert {c for c, r in by_id.items() if r.split == "test"} == {l.split(" ")[0] for l in TEST[:2]} | {
        "Party/Disgust/0003"}


def test_scene_frames_optional(tmp_path: Path) -> None:
    scan = scan_ferv39k(make_ferv(tmp_path / "ferv", scenes=False))
    assert scan.problems == [] and all(r.scene_path is None for r in scan.records)
    root = make_ferv(tmp_path / "ferv2")
    shutil.rmtree(root / "3_ClipsforScenImages" / "Crime" / "Happy")
    scan = scan_ferv39k(root)
    assert [(p.clip_id, p.kind) for p in scan.problems] == [("Crime/Happy/0001", "missing-file")]
    assert apply_policy(scan, "stop").records == scan.records  # a warning: nothing dropped


def test_problems(tmp_path: Path) -> None:
    train = [*TRAIN, "Crime/Fear/0010 Fear", "Crime/Happy/0001 Happy", "Crime/Happy/0002 Joy",
             "Crime/Sad/0005 Happy", "Crime/Sad/0009", "Crime/Angry/0063 Sad"]
    root = make_ferv(tmp_path / "ferv", train=train)
    shutil.rmtree(root / "2_ClipsforFaceCrop" / "Party" / "Surprise")
    scan = scan_ferv39k(root)
    by_kind: dict[str, list] = {}
    for p in scan.problems:
        by_kind.setdefault(p.kind, []).append(p.clip_id)
    assert by_kind["inconsistent-splits"] == ["Crime/Fear/0010"]
    assert by_kind["duplicate-line"] == ["Crime/Happy/0001"]
    assert by_kind["duplicate-id"] == ["Crime/Angry/0063"]
    assert by_kind["unknown-label"] == ["Crime/Happy/0002"]
    assert by_kind["label-mismatch"] == ["Crime/Sad/0005"]
    assert by_kind["bad-line"] == [None]
    assert by_kind["absent-on-disk"] == ["Party/Surprise/0042"]
    kept = {r.clip_id for r in apply_policy(scan, "skip").records}
    assert kept == {"Crime/Happy/0001", "Daily Life/Sad/0102", "Talk Show/Neutral/0007",
                    "Party/Disgust/0003", "Crime/Sad/0005"}


def test_missing_lists_are_fatal(tmp_path: Path) -> None:
    root = make_ferv(tmp_path / "ferv")
    (root / "4_setups" / "All_scenes" / "test_All.csv").unlink()
    with pytest.raises(ScanError, match="test_All.csv"):
        scan_ferv39k(root)
    shutil.rmtree(root / "4_setups")
    with pytest.raises(ScanError, match="4_setups/All_scenes"):
        scan_ferv39k(root)


def test_layout_spelling(tmp_path: Path) -> None:
    root = make_ferv(tmp_path / "ferv")
    (root / "4_setups").rename(root / "4_Setups")
    (root / "4_Setups" / "All_scenes").rename(root / "4_Setups" / "All_Scenes")
    assert len(scan_ferv39k(root).records) == len(TRAIN) + len(TEST)
