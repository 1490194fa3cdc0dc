"""probe(): facts from ffprobe, and one clear reason per kind of bad file."""
from __future__ import annotations

import shutil

import pytest

from pipelines.media import MediaError, probe

try:
    from . import conftest_media as cm
except ImportError:
    import conftest_media as cm

pytestmark = cm.needs_ffmpeg


def test_probe_reads_stream_facts(tmp_path_factory):
    info = probe(cm.av_clip(tmp_path_factory))
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.fps == pytest.approx(25.0)
    assert info.n_frames == 50 and info.frames_counted
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert info.has_video and info.has_audio
    assert (info.audio_sample_rate, info.audio_channels) == (44100, 1)
    assert "mp4" in info.format_name


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.reason == "empty file (0 bytes)"
    assert err.value.path == str(path)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="file not found"):
        probe(tmp_path / "nope.mp4")


def test_text_file_renamed_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("Good notes, not a video (G is also the MPEG-TS sync byte)\n" * 20)
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.reason.startswith("not a media file: ")
    assert str(path) not in err.value.reason  # the reason is per clip; the path is kept apart


def test_truncated_mp4_cut_in_half(tmp_path_factory, tmp_path):
    # ffmpeg writes the index (moov) at the end by default, so the first half has no index.
    data = cm.av_clip(tmp_path_factory).read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.reason.startswith("truncated or corrupt: ")
    assert "moov atom not found" in err.value.reason


def test_truncated_faststart_mp4_cut_in_half(tmp_path_factory, tmp_path):
    # With the index first the header still opens, but it lists frames the file no longer holds.
    full = cm.build(tmp_path_factory, "faststart.mp4", *cm.testsrc(), *cm.H264,
                    "-movflags", "+faststart")
    data = full.read_bytes()
    path = tmp_path / "half_faststart.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.reason.startswith("truncated or corrupt: ")


def test_audio_only_file_has_no_video(tmp_path_factory):
    path = cm.audio_only(tmp_path_factory)
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.reason == "no video stream"
    info = probe(path, require_video=False)
    assert not info.has_video and info.has_audio and info.n_frames == 0


def test_rotation_metadata(tmp_path_factory):
    src = cm.video_only(tmp_path_factory)
    rot = cm.build(tmp_path_factory, "rot90.mp4", "-i", str(src), "-c", "copy",
                   "-metadata:s:v:0", "rotate=90")
    info = probe(rot)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (64, 48)
    assert info.display_size == (48, 64)


def test_path_with_spaces_and_non_ascii(tmp_path_factory, tmp_path):
    path = tmp_path / "clip with spaces ü 日本語 (1) $x;.mp4"
    shutil.copy(cm.av_clip(tmp_path_factory), path)
    info = probe(path)
    assert info.n_frames == 50 and info.has_audio


def test_a_stalled_tool_becomes_a_per_clip_reason(tmp_path_factory, monkeypatch):
    import importlib
    import subprocess

    # The package re-exports the function `probe`, which hides the module of the same name.
    probe_mod = importlib.import_module("pipelines.media.probe")

    def stall(args, **kwargs):
        raise subprocess.TimeoutExpired(args, kwargs.get("timeout"))

    path = cm.av_clip(tmp_path_factory)
    monkeypatch.setattr(probe_mod.subprocess, "run", stall)
    with pytest.raises(MediaError) as err:
        probe(path)
    assert "gave no result within" in err.value.reason and err.value.path == str(path)
