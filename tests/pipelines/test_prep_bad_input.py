"""prep on damaged and unusual inputs: each clip gets a clear status and reason, the run finishes."""
from __future__ import annotations

import shutil

import pytest

from tests.pipelines.prep_fixtures import SAMPLE, ffmpeg, write_manifest
from umbenet_cli.cli import main
from umbenet_cli.data.cache_io import read_features, read_media


@pytest.fixture(scope="module")
def bad_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    good = SAMPLE / "clips" / "00018.mp4"
    (d / "zero.mp4").write_bytes(b"")
    (d / "notes.mp4").write_text("this is not a video\n")
    data = good.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    ffmpeg("-i", str(good), "-vn", "-c:a", "aac", str(d / "voice only.m4a"))
    ffmpeg("-i", str(good), "-an", "-c:v", "copy", str(d / "silent film.mp4"))
    ffmpeg("-i", str(good), "-frames:v", "1", "-an", str(d / "one frame.mp4"))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x96:rate=10:duration=1", "-pix_fmt", "yuv420p", str(d / "no face.mp4"))
    shutil.copy(good, d / "ok.mp4")
    rows = [{"path": p, "label": "anger", "text": "", "fold": 1} for p in
            ["zero.mp4", "notes.mp4", "truncated.mp4", "voice only.m4a", "silent film.mp4",
             "one frame.mp4", "no face.mp4", "ok.mp4"]]
    return write_manifest(d, rows)


@pytest.fixture(scope="module")
def bad_cache(bad_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bad-cache")
    assert main(["prep", "manifest", str(bad_dataset), "--out", str(out), "--preset", "tiny"]) == 0
    rows = read_media(out, columns=[]).meta.to_pylist()
    return out, {row["clip_id"]: row for row in rows}


def _row(bad_cache, name):
    rows = bad_cache[1]
    key = next(k for k in rows if k.startswith(name))
    return rows[key]


@pytest.mark.parametrize("name,reason", [
    ("zero", "empty file (0 bytes)"),
    ("notes", "not a media file"),
    ("truncated", "truncated or corrupt"),
])
def test_unreadable_files_fail_with_their_reason(bad_cache, name, reason):
    row = _row(bad_cache, name)
    assert row["status"] == "failed" and reason in row["status_reason"]


def test_audio_only_file_keeps_its_audio(bad_cache):
    row = _row(bad_cache, "voice only")
    assert row["status"] == "partial" and "video: no video stream" in row["status_reason"]
    assert row["audio_num_samples"] > 0


def test_video_without_audio_is_missing_audio_not_noise(bad_cache):
    row = _row(bad_cache, "silent film")
    assert row["status"] == "partial" and row["audio_missing_reason"] == "no audio stream"
    ft = read_features(bad_cache[0])
    i = list(ft.clip_ids).index(row["clip_id"])
    assert not ft.presence[i, 1] and not ft.audio[i].any()


def test_one_frame_video_is_padded_and_counted(bad_cache):
    row = _row(bad_cache, "one frame")
    assert row["status"] != "failed" and row["n_source_frames"] == 1 and row["n_valid_frames"] == 1


def test_no_face_is_recorded(bad_cache):
    row = _row(bad_cache, "no face")
    assert row["face_ratio"] == 0.0 and "face found in 0/4 frames" in row["status_reason"]


def test_good_clip_is_ok(bad_cache):
    # The manifest has no text at all, so a missing text does not make a clip partial.
    assert _row(bad_cache, "ok")["status"] == "ok"


def test_no_face_with_mark_fallback_marks_video_missing(bad_dataset, tmp_path):
    assert main(["prep", "manifest", str(bad_dataset), "--out", str(tmp_path), "--preset", "tiny",
                 "--face-fallback", "mark", "--media-only"]) == 0
    meta = read_media(tmp_path, columns=[]).meta.to_pydict()
    reason = dict(zip(meta["clip_id"], meta["status_reason"]))["no face.mp4"]
    assert "video: no face in any sampled frame" in reason


def test_dataset_problems_stop_or_skip(tmp_path, capsys):
    shutil.copy(SAMPLE / "clips" / "00018.mp4", tmp_path / "a.mp4")
    shutil.copy(SAMPLE / "clips" / "00021.mp4", tmp_path / "b.mp4")
    manifest = write_manifest(tmp_path, [
        {"path": "a.mp4", "label": "anger", "text": "", "fold": 1},
        {"path": "b.mp4", "label": "rage", "text": "", "fold": 1},  # unknown label
        {"path": "missing.mp4", "label": "anger", "text": "", "fold": 2},  # absent on disk
    ])
    out = tmp_path / "cache"
    assert main(["prep", "manifest", str(manifest), "--out", str(out), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "unknown-label" in err and "absent-on-disk" in err and "skip" in err
    assert not out.exists()  # nothing was written
    assert main(["prep", "manifest", str(manifest), "--out", str(out), "--preset", "tiny",
                 "--on-problem", "skip"]) == 0
    assert list(read_features(out).clip_ids) == ["a.mp4"]


def test_asr_text_from_a_local_whisper_checkpoint(tmp_path):
    from pipelines.asr import write_tiny_whisper

    for src, name in (("00018", "a.mp4"), ("00007", "no audio.mp4")):  # 00007 has no audio stream
        shutil.copy(SAMPLE / "clips" / f"{src}.mp4", tmp_path / name)
    manifest = write_manifest(tmp_path, [{"path": n, "label": "anger", "text": "", "fold": 1}
                                         for n in ("a.mp4", "no audio.mp4")])
    whisper_pt = write_tiny_whisper(tmp_path / "whisper-tiny-random.pt")
    out = tmp_path / "cache"
    assert main(["prep", "manifest", str(manifest), "--out", str(out), "--preset", "tiny",
                 "--text", "asr", "--asr-model", str(whisper_pt)]) == 0
    meta = read_media(out, columns=[]).meta.to_pydict()
    rows = {c: i for i, c in enumerate(meta["clip_id"])}
    a, silent = rows["a.mp4"], rows["no audio.mp4"]
    assert meta["text_source"][a] in ("asr", "none") and meta["text_language"][a]
    assert (meta["text"][a] is None) == (meta["text_source"][a] == "none")
    assert meta["text"][silent] is None and "no audio to transcribe" in meta["text_missing_reason"][silent]


def test_offline_whisper_name_is_a_clean_error(tmp_path, capsys, monkeypatch):
    shutil.copy(SAMPLE / "clips" / "00018.mp4", tmp_path / "a.mp4")
    manifest = write_manifest(tmp_path, [{"path": "a.mp4", "label": "anger", "text": "", "fold": 1}])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))  # no whisper weights here
    assert main(["prep", "manifest", str(manifest), "--out", str(tmp_path / "c"), "--preset", "tiny",
                 "--text", "asr", "--asr-model", "tiny"]) == 2
    assert "could not load Whisper model 'tiny'" in capsys.readouterr().err
