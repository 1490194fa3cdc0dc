"""Which clips take part: validation never holds a test clip (every adapter, both manifest forms),
and a failed clip takes part in nothing (prep -> train -> eval)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.sources import scan_dfew, scan_ferv39k, scan_mafw, scan_manifest
from tests.pipelines.test_sources_mafw import make_mafw
from umbenet_cli.cli import main
from umbenet_cli.data.cache_io import CacheSpec, PartWriter, features_dir, read_features
from umbenet_cli.data.classes import DFEW_CLASSES, FERV39K_CLASSES, MAFW_CLASSES
from umbenet_cli.training.data import make_splits, protocol_folds

SAMPLE_CLIPS = Path(__file__).resolve().parents[2] / "sample_data" / "mafw" / "clips"
PER_CLASS = 5  # clips per class: one in each of 5 folds


def cache_from_records(out: Path, dataset: str, classes, records, failed: frozenset = frozenset()) -> Path:
    """A features table holding the scan's records (labels, folds, splits) with random features;
    the ``failed`` clips are written as an older prep wrote a failed MAFW clip: status failed, and
    yet a text embedding (its caption came from the label files)."""
    rng = np.random.default_rng(0)
    spec = CacheSpec(dataset=dataset, classes=tuple(classes), num_frames=2, audio_seconds=1.0, sample_rate=16000,
                     sampling="test", embed_dim=8, backbone="b", backbone_fingerprint="f")
    with PartWriter(features_dir(out), spec) as writer:
        for r in records:
            bad = r.clip_id in failed
            writer.write({
                "clip_id": r.clip_id, "label": r.label, "fold": r.fold, "split": r.split,
                "status": "failed" if bad else "ok", "status_reason": "empty file (0 bytes)" if bad else "",
                "n_source_frames": 0 if bad else 2, "n_valid_frames": 0 if bad else 2, "face_ratio": 0.0 if bad else 1.0,
                "text": "a caption", "text_source": "annotation", "text_language": None,
                "frame_emb": None if bad else rng.standard_normal((2, 8)).astype(np.float32),
                "audio": None, "text_emb": rng.standard_normal(8).astype(np.float32),
            })
    return out


def check_disjoint(cache: Path, failed: frozenset = frozenset()) -> list:
    """make_splits of every fold (or the train/test split): train, val and test pairwise disjoint,
    and no failed clip anywhere. Returns the splits."""
    table = read_features(cache)
    out = []
    for fold in protocol_folds(table) or [None]:
        s = make_splits(table, fold, 0.1, 0)
        ids = {k: {table.clip_ids[i] for i in getattr(s, k)} for k in ("train", "val", "test")}
        assert ids["val"] and ids["test"] and ids["train"]
        assert not ids["val"] & ids["test"], (fold, ids["val"] & ids["test"])
        assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"]
        assert not (ids["train"] | ids["val"] | ids["test"]) & failed
        out.append((fold, ids))
    return out


def _mafw(root: Path):
    labels = {f"{i:05d}": i % 11 + 1 for i in range(1, 11 * PER_CLASS + 1)}
    folds = {c: (int(c) - 1) // 11 + 1 for c in labels}
    return scan_mafw(make_mafw(root, labels=labels, folds=folds)), MAFW_CLASSES


def _dfew(root: Path):
    ids = [f"{i:05d}" for i in range(1, 7 * PER_CLASS + 1)]
    label = {c: i % 7 + 1 for i, c in enumerate(ids)}
    fold = {c: i // 7 + 1 for i, c in enumerate(ids)}
    for part in ("train(single-labeled)", "test(single-labeled)"):
        (root / "EmoLabel_DataSplit" / part).mkdir(parents=True)
        for k in range(1, 6):
            rows = [f"{c},{label[c]}" for c in ids if (fold[c] == k) == part.startswith("test")]
            (root / "EmoLabel_DataSplit" / part / f"set_{k}.csv").write_text("video_name,label\n" + "\n".join(rows) + "\n")
    (root / "Clip" / "original").mkdir(parents=True)
    for c in ids:
        (root / "Clip" / "original" / f"{c}.mp4").write_bytes(b"")
    return scan_dfew(root), DFEW_CLASSES


def _ferv(root: Path):
    names = ["Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear"]
    lines = {"train": [f"Crime/{n}/{i:04d} {n}" for n in names for i in range(3)],
             "test": [f"Party/{n}/{i:04d} {n}" for n in names for i in range(2)]}
    (root / "4_setups" / "All_scenes").mkdir(parents=True)
    for part, rows in lines.items():
        (root / "4_setups" / "All_scenes" / f"{part}_All.csv").write_text("\n".join(rows) + "\n")
        for row in rows:
            (root / "2_ClipsforFaceCrop" / row.rsplit(" ", 1)[0]).mkdir(parents=True)
            (root / "2_ClipsforFaceCrop" / row.rsplit(" ", 1)[0] / "1.jpg").write_bytes(b"")
    return scan_ferv39k(root), FERV39K_CLASSES


CLASSES = ("calm", "joy", "anger")


def _manifest_csv(root: Path):
    """The case that leaked: rows with both a fold and split=val."""
    root.mkdir(parents=True)
    rows = ["path,label,fold,split"]
    for i in range(3 * 3 * PER_CLASS):
        (root / f"c{i}.mp4").write_bytes(b"")
        rows.append(f"c{i}.mp4,{CLASSES[i % 3]},{i // 9 + 1},{'val' if i % 9 in (0, 4) else 'train'}")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    return scan_manifest(root / "m.csv", classes=CLASSES), CLASSES


def _manifest_list(root: Path):
    """The DFER list form: the split comes from each file's name."""
    for part, n in (("train", 4), ("val", 2), ("test", 2)):
        lines = []
        for i in range(3 * n):
            folder = root / "frames" / f"{part}{i}"
            folder.mkdir(parents=True)
            (folder / "1.jpg").write_bytes(b"")
            lines.append(f"frames/{part}{i} 1 {i % 3}")
        (root / f"{part}.txt").write_text("\n".join(lines) + "\n")
    return scan_manifest([root / f"{p}.txt" for p in ("train", "val", "test")], classes=CLASSES), CLASSES


@pytest.mark.parametrize("make", [_mafw, _dfew, _ferv, _manifest_csv, _manifest_list],
                         ids=["mafw", "dfew", "ferv39k", "manifest-csv", "manifest-list"])
def test_validation_never_holds_a_test_clip(tmp_path, make):
    scan, classes = make(tmp_path / "data")
    assert not scan.errors(), scan.errors()
    failed = frozenset({scan.records[0].clip_id})
    cache = cache_from_records(tmp_path / "cache", scan.dataset, classes, scan.records, failed)
    splits = check_disjoint(cache, failed)
    if make is _manifest_csv:
        by_id = {r.clip_id: r for r in scan.records}
        for fold, ids in splits:
            # The manifest's val rows of the training folds are the validation set ...
            assert ids["val"] == {c for c, r in by_id.items() if r.split == "val" and r.fold != fold} - failed
            # ... and a val row of the test fold is a test clip only.
            assert {c for c, r in by_id.items() if r.split == "val" and r.fold == fold} - failed <= ids["test"]
        # split=test beside a fold is overridden by the fold: said in the scan table.
        (tmp_path / "data" / "m2.csv").write_text("path,label,fold,split\nc0.mp4,calm,1,test\nc1.mp4,joy,2,val\n")
        warned = scan_manifest(tmp_path / "data" / "m2.csv", classes=CLASSES).warnings()
        assert [(p.clip_id, p.kind) for p in warned] == [("c0.mp4", "split-with-fold")]
    if make is _manifest_list:
        [(_, ids)] = splits
        assert ids["val"] == {r.clip_id for r in scan.records if r.split == "val"} - failed


# ----------------------------------------------------------------------- failed: prep -> train -> eval
@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """A MAFW release of 13 clips (anger and happiness, folds 1-2) where clip 00013 is a 0-byte
    file whose caption descriptive_text.xlsx gives; trained on those two classes."""
    root = tmp_path_factory.mktemp("mafw")
    labels = {f"{i:05d}": (1, 4)[i % 2] for i in range(1, 14)}  # 1 = anger, 4 = happiness
    folds = {c: 1 if int(c) <= 6 or c == "00013" else 2 for c in labels}
    make_mafw(root, labels=labels, folds=folds)
    pd.DataFrame({"name": [f"{c}.mp4" for c in labels], "e_cap": [f"A person in clip {c} looks up." for c in labels],
                  "c_cap": ["" for _ in labels]}).to_excel(root / "Labels" / "descriptive_text.xlsx", index=False)
    for src, clip in zip(sorted(SAMPLE_CLIPS.glob("*.mp4")), sorted(labels)[:12]):
        shutil.copy(src, root / "clips" / f"{clip}.mp4")  # 00013.mp4 stays 0 bytes
    cache, runs = root / "cache", root / "runs"
    assert main(["prep", "mafw", str(root), "--out", str(cache), "--preset", "tiny"]) == 0
    others = ",".join(c for c in MAFW_CLASSES if c not in ("anger", "happiness"))
    assert main(["train", "--cache", str(cache), "--runs-dir", str(runs), "--preset", "tiny", "--name", "r",
                 "--fold", "all", "--stage", "one", "--max-steps", "1", "--set", "optim.batch_size=2",
                 "--exclude-classes", others]) == 0
    assert main(["eval", str(runs / "r")]) == 0
    return cache, runs / "r"


def test_a_failed_clip_keeps_no_modality(failed_run):
    cache, _ = failed_run
    table = read_features(cache)
    meta = dict(zip(table.clip_ids, zip(table.meta.column("status").to_pylist(),
                                        table.meta.column("status_reason").to_pylist())))
    assert meta["00013"][0] == "failed" and "0 bytes" in meta["00013"][1]
    i = list(table.clip_ids).index("00013")
    assert not table.presence[i].any()  # not even the caption descriptive_text.xlsx gives
    j = list(table.clip_ids).index("00011")
    assert table.presence[j, 2]  # while the other clips keep theirs


def test_a_failed_clip_takes_part_in_nothing(failed_run):
    _, run = failed_run
    for fold in (1, 2):
        res_dir = run / f"fold{fold}" / "onestage" / "eval" / "test"
        results = json.loads((res_dir / "results.json").read_text())
        with open(res_dir / "predictions.csv") as fh:
            ids = {row["clip_id"] for row in csv.DictReader(fh)}
        assert "00013" not in ids and len(ids) == 6
        assert results["n_failed_left_out"] == (1 if fold == 1 else 0)
        for e in results["subsets"]:
            assert e["n"] + e["n_without_input"] == 6
