"""umbenet prep end to end: sample_data, resume after interruption, shards, the cache contract."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.pipelines.prep_fixtures import SAMPLE, small_manifest
from umbenet_cli.cli import main
from umbenet_cli.data.cache_io import read_features, read_media


def test_sample_data_cache_contents(sample_cache):
    ft = read_features(sample_cache)
    assert len(ft.clip_ids) == 33
    labels = pd.read_excel(SAMPLE / "Labels" / "single-set.xlsx")
    truth = {n.removesuffix(".mp4"): int(l) - 1 for n, l in zip(labels["name"], labels["single_label"])}
    assert {c: int(l) for c, l in zip(ft.clip_ids, ft.labels)} == truth  # official order, 0-based
    by_id = dict(zip(ft.clip_ids, ft.presence))
    for no_audio in ("00007", "00011", "00016"):  # made without an audio stream (PROVENANCE.md)
        assert not by_id[no_audio][1]
    for neutral in ("00003", "00009", "00011"):  # MAFW's neutral clips have no caption
        assert not by_id[neutral][2]
    assert ft.presence[:, 0].all() and ft.frame_emb.shape == (33, 4, 32)
    assert (ft.n_valid_frames == 4).all() and set(ft.folds.tolist()) == {1, 2, 3, 4, 5}
    meta = ft.meta.to_pydict()
    reasons = dict(zip(meta["clip_id"], meta["status_reason"]))
    assert "audio: no audio stream" in reasons["00007"]
    assert dict(zip(meta["clip_id"], meta["status"]))["00011"] == "partial"


def test_cache_readable_without_umbenet(sample_cache):
    # Plain pyarrow + numpy, following the metadata the file carries.
    part = sorted((sample_cache / "features").glob("part-*.parquet"))[0]
    meta = json.loads(pq.read_schema(part).metadata[b"umbenet"])
    assert meta["spec"]["classes"][0] == "anger" and meta["spec"]["backbone"] == "umbenet/tiny-random-clip"
    table = pq.read_table(part)
    shape = meta["tensors"]["frame_emb"]["shape"]
    first = np.frombuffer(table.column("frame_emb")[0].as_py(), "<f2").reshape(shape)
    assert first.shape == (4, 32) and np.isfinite(first).all()
    crops = pq.read_table(sorted((sample_cache / "media").glob("part-*.parquet"))[0], columns=["crops"])
    assert crops.column("crops")[0].as_py()[0][:2] == b"\xff\xd8"  # JPEG


def test_second_run_reuses_everything(sample_cache, capsys, tmp_path):
    shutil.copytree(sample_cache, tmp_path / "c")  # the session's cache stays untouched
    sample_cache = tmp_path / "c"
    before = {p.name for p in (sample_cache / "features").iterdir()}
    assert main(["prep", "mafw", str(SAMPLE), "--out", str(sample_cache), "--preset", "tiny"]) == 0
    assert "33 / 33" in capsys.readouterr().err
    assert {p.name for p in (sample_cache / "features").iterdir()} == before


def _arrays(cache):
    ft = read_features(cache)
    media = read_media(cache, columns=["audio", "crops"])
    return {
        "ids": list(ft.clip_ids), "labels": ft.labels.tolist(), "presence": ft.presence.tolist(),
        "frame_emb": ft.frame_emb.tobytes(), "audio": ft.audio.tobytes(), "text_emb": ft.text_emb.tobytes(),
        "crops": media.crops.to_pylist(),
        "meta": ft.meta.drop_columns([]).to_pylist(),
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    manifest = small_manifest(root / "data")
    out = root / "reference"
    assert main(["prep", "manifest", str(manifest), "--out", str(out), "--preset", "tiny"]) == 0
    return manifest, _arrays(out)


def test_shards_union_equals_unsharded_run(small, tmp_path):
    manifest, reference = small
    for i in range(3):
        assert main(["prep", "manifest", str(manifest), "--out", str(tmp_path), "--preset", "tiny",
                     "--shard", f"{i}/3"]) == 0
    assert len({p.name.split("-")[1] for p in (tmp_path / "media").glob("part-*")}) >= 2  # several shards wrote
    assert _arrays(tmp_path) == reference


def test_interrupt_and_resume_gives_the_same_cache(small, tmp_path, monkeypatch):
    manifest, reference = small
    from pipelines import media_stage

    calls = {"n": 0}
    real = media_stage.MediaStage._row

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the media stage
        return real(self, *args, **kwargs)

    monkeypatch.setattr(media_stage.MediaStage, "_row", flaky)
    # Ctrl-C: the command stops with exit code 130, keeping what it finished.
    assert main(["prep", "manifest", str(manifest), "--out", str(tmp_path), "--preset", "tiny",
                 "--batch-clips", "1"]) == 130
    monkeypatch.setattr(media_stage.MediaStage, "_row", real)
    assert len(read_media(tmp_path, columns=[]).clip_ids) == 3  # finished rows were kept
    assert main(["prep", "manifest", str(manifest), "--out", str(tmp_path), "--preset", "tiny"]) == 0
    assert _arrays(tmp_path) == reference


def test_kill_minus_nine_and_resume(small, tmp_path):
    manifest, reference = small
    cmd = [sys.executable, "-m", "umbenet_cli.cli", "prep", "manifest", str(manifest), "--out", str(tmp_path),
           "--preset", "tiny", "--batch-clips", "1", "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "media").glob("part-*.parquet")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert _arrays(tmp_path) == reference


def test_changed_settings_refused_then_forced(small, tmp_path, capsys):
    manifest, _ = small
    args = ["prep", "manifest", str(manifest), "--out", str(tmp_path), "--preset", "tiny"]
    assert main(args) == 0
    before = sorted(p.name for p in (tmp_path / "media").iterdir())
    assert main(args + ["--set", "num_frames=3"]) == 2
    err = capsys.readouterr().err
    assert "num_frames: 4 vs 3" in err and "--force" in err
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == before  # nothing lost
    assert main(args + ["--set", "num_frames=3", "--force"]) == 0
    assert read_features(tmp_path).frame_emb.shape[1] == 3
