"""Layout checks for the embedded MAFW-style sample dataset (sample_data/mafw). Reads only."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1] / "sample_data"
MAFW = ROOT / "mafw"
SPLITS = MAFW / "Train & Test Set" / "single"
CLASSES = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
           "contempt", "anxiety", "helplessness", "disappointment"]
EMOTION_WORDS = set(CLASSES) | {"angry", "happy", "sad", "surprised", "afraid", "scared",
                                "anxious", "helpless", "disappointed", "disgusted", "joy"}


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    return pd.read_excel(MAFW / "Labels" / "single-set.xlsx")


@pytest.fixture(scope="module")
def captions() -> pd.DataFrame:
    return pd.read_excel(MAFW / "Labels" / "descriptive_text.xlsx").set_index("name")


def read_split(variant: str, fold: int, part: str) -> list[list[str]]:
    raw = (SPLITS / variant / f"set_{fold}" / f"{part}.txt").read_bytes()
    text = raw.decode("gbk" if variant == "with_caption" else "utf-8")
    sep = "\t" if variant == "with_caption" else " "
    return [line.split(sep) for line in text.splitlines() if line]


def test_label_sheet_matches_clips(labels: pd.DataFrame) -> None:
    assert list(labels.columns[:2]) == ["name", "single_label"]
    names = list(labels["name"])
    assert all(re.fullmatch(r"\d{5}\.mp4", n) for n in names)
    assert sorted(names) == sorted(p.name for p in (MAFW / "clips").glob("*.mp4"))
    assert set(labels["single_label"]) == set(range(1, 12))  # every class present


@pytest.mark.parametrize("variant", ["no_caption", "with_caption"])
def test_each_clip_in_exactly_one_test_fold(labels: pd.DataFrame, variant: str) -> None:
    names = set(labels["name"])
    label_of = {n: CLASSES[l - 1] for n, l in zip(labels["name"], labels["single_label"])}
    test_count = dict.fromkeys(names, 0)
    for k in range(1, 6):
        test = read_split(variant, k, "test")
        train = read_split(variant, k, "train")
        assert {r[0] for r in test}.isdisjoint(r[0] for r in train)
        assert {r[0] for r in test} | {r[0] for r in train} == names
        for row in test + train:
            assert label_of[row[0]] == row[1]
        for row in test:
            test_count[row[0]] += 1
    assert set(test_count.values()) == {1}


def test_gbk_caption_splits(captions: pd.DataFrame) -> None:
    for k in range(1, 6):
        for part in ("train", "test"):
            for name, _label, c_cap, e_cap in read_split("with_caption", k, part):
                want_e = captions.loc[name, "e_cap"]
                want_c = captions.loc[name, "c_cap"]
                assert e_cap == ("" if pd.isna(want_e) else want_e)
                assert c_cap == ("" if pd.isna(want_c) else want_c)


def test_captions(labels: pd.DataFrame, captions: pd.DataFrame) -> None:
    assert {"e_cap", "c_cap"} <= set(captions.columns)
    label_of = dict(zip(labels["name"], labels["single_label"]))
    missing = [n for n in captions.index if pd.isna(captions.loc[n, "e_cap"])]
    for name in labels["name"]:
        if CLASSES[label_of[name] - 1] == "neutral":
            assert name in missing, f"neutral clip {name} has a caption"
    assert len(missing) > sum(CLASSES[l - 1] == "neutral" for l in label_of.values())
    for text in captions["e_cap"].dropna():
        assert not set(re.findall(r"[a-z]+", text.lower())) & EMOTION_WORDS, text


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
def test_some_clips_have_no_audio_stream() -> None:
    no_audio = []
    for clip in sorted((MAFW / "clips").glob("*.mp4")):
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type",
                              "-of", "csv=p=0", str(clip)], capture_output=True, text=True, check=True)
        types = out.stdout.split()
        assert "video" in types, clip.name
        if "audio" not in types:
            no_audio.append(clip.name)
    assert 2 <= len(no_audio) < 10


def test_total_size_small() -> None:
    size = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    assert size < 4_000_000
