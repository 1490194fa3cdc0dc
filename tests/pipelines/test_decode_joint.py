"""Frames and audio from one ffmpeg process (decode_clip's default) give exactly what the separate
calls give: frames, samples, counts, notes and every missing-audio reason."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipelines.clip_decode import decode_clip
from pipelines.media import probe, read_video_frames_and_audio
from pipelines.sources import ClipRecord
from tests.pipelines.prep_fixtures import SAMPLE

try:
    from . import conftest_media as cm
except ImportError:
    import conftest_media as cm

pytestmark = cm.needs_ffmpeg
SR = 16000
CLIPS = sorted((SAMPLE / "clips").glob("*.mp4"))


def _record(path: Path) -> ClipRecord:
    return ClipRecord(clip_id=path.stem, media_path=path, media_kind="video", label=0, text=None,
                      text_source="none", fold=1, split=None)


def _assert_same(a, b) -> None:
    for name in ("n_valid", "n_source_frames", "audio_reason", "video_reason", "fatal", "notes"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("frames", "audio"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name


def test_joint_equals_separate_on_every_sample_clip():
    with_audio = 0
    for clip in CLIPS:  # 1.8-2.6 s of audio: shorter than the 8 s target
        joint = decode_clip(_record(clip), 16, SR, 8 * SR)
        separate = decode_clip(_record(clip), 16, SR, 8 * SR, joint_audio=False)
        _assert_same(joint, separate)
        with_audio += joint.audio is not None
    assert with_audio == len(CLIPS) - 3  # 00007, 00011, 00016 have no audio stream


def test_audio_longer_than_the_target_is_cut_the_same_way():
    for clip in CLIPS[:6]:
        _assert_same(decode_clip(_record(clip), 8, SR, SR // 2),
                     decode_clip(_record(clip), 8, SR, SR // 2, joint_audio=False))


def test_cut_note_and_missing_reason_survive():
    short = decode_clip(_record(SAMPLE / "clips" / "00018.mp4"), 16, SR, SR // 2)
    assert short.audio.shape == (SR // 2,) and "audio cut to the first 0.5 s" in short.notes
    silent = decode_clip(_record(SAMPLE / "clips" / "00007.mp4"), 16, SR, 8 * SR)
    assert silent.audio is None and silent.audio_reason == "no audio stream"


class _CountingPopen(subprocess.Popen):
    started: list[str] = []

    def __init__(self, args, *a, **kw):
        type(self).started.append(Path(args[0]).name)
        super().__init__(args, *a, **kw)


def test_two_processes_per_clip_with_audio(monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", _CountingPopen)
    _CountingPopen.started = []
    out = decode_clip(_record(SAMPLE / "clips" / "00018.mp4"), 16, SR, 8 * SR)
    assert out.audio is not None and out.frames.shape[0] == 16
    assert _CountingPopen.started == ["ffprobe", "ffmpeg"]


def test_joint_returns_nothing_when_ffmpeg_complains(monkeypatch):
    """Any stderr output (a decoding error in either stream) sends the clip down the separate
    path, whose reasons and recounting are the reference."""
    from pipelines.media import frames

    clip = SAMPLE / "clips" / "00018.mp4"
    info = probe(clip, require_video=False)
    assert read_video_frames_and_audio(clip, 16, info, SR) is not None
    real = frames.run_tool_two_outputs

    def noisy(args_for, timeout_s=600.0):
        proc, audio = real(args_for, timeout_s)
        proc.stderr = b"[aac @ 0x1] Error while decoding stream #0:1\n"
        return proc, audio

    monkeypatch.setattr(frames, "run_tool_two_outputs", noisy)
    assert read_video_frames_and_audio(clip, 16, info, SR) is None
    _assert_same(decode_clip(_record(clip), 16, SR, 8 * SR),
                 decode_clip(_record(clip), 16, SR, 8 * SR, joint_audio=False))


def test_undecodable_audio_stream_keeps_its_reason(tmp_path):
    """Video fine, audio codec without a decoder: ffmpeg fails, the separate path gives the reason."""
    avi = tmp_path / "pcm.avi"
    cm.ffmpeg(*cm.testsrc(), "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=2",
              "-c:v", "mjpeg", "-c:a", "pcm_s16le", str(avi))
    data = bytearray(avi.read_bytes())
    fmt = data.find(b"strf", data.find(b"auds")) + 8  # WAVEFORMATEX.wFormatTag of the audio stream
    assert data[fmt:fmt + 2] == b"\x01\x00"
    data[fmt:fmt + 2] = (0x3456).to_bytes(2, "little")
    odd = tmp_path / "odd codec.avi"
    odd.write_bytes(bytes(data))
    joint = decode_clip(_record(odd), 16, SR, 8 * SR)
    _assert_same(joint, decode_clip(_record(odd), 16, SR, 8 * SR, joint_audio=False))
    assert joint.frames is not None and joint.fatal is None
    assert joint.audio is None and joint.audio_reason.startswith("audio decode failed: ")
    ok = decode_clip(_record(avi), 16, SR, 8 * SR)  # the same file unpatched: both from one process
    assert ok.audio is not None and len(ok.audio) == pytest.approx(2 * SR, abs=SR // 20)


def test_video_only_and_audio_only_files(tmp_path_factory):
    for path in (cm.video_only(tmp_path_factory), cm.audio_only(tmp_path_factory)):
        _assert_same(decode_clip(_record(path), 16, SR, 8 * SR),
                     decode_clip(_record(path), 16, SR, 8 * SR, joint_audio=False))


def test_two_output_run_times_out_cleanly():
    from pipelines.media import MediaError
    from pipelines.media.probe import run_tool_two_outputs

    def endless(url):  # a source that never ends, on both outputs
        return ["ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i", "sine=frequency=440",
                "-f", "f32le", "pipe:1", "-f", "f32le", url]

    with pytest.raises(MediaError, match="gave no result within 1 s"):
        run_tool_two_outputs(endless, timeout_s=1.0)


def test_joint_timeout_falls_back(monkeypatch):
    from pipelines.media import MediaError, frames

    def stalled(args_for, timeout_s=600.0):
        raise MediaError("ffmpeg gave no result within 600 s (damaged file?)")

    monkeypatch.setattr(frames, "run_tool_two_outputs", stalled)
    clip = SAMPLE / "clips" / "00018.mp4"
    assert read_video_frames_and_audio(clip, 16, probe(clip, require_video=False), SR) is None
    _assert_same(decode_clip(_record(clip), 16, SR, 8 * SR),
                 decode_clip(_record(clip), 16, SR, 8 * SR, joint_audio=False))
