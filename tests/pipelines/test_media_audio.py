"""extract_audio(): mono float32 at 16 kHz, or None with the reason. Never noise, never silence."""
from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest

from pipelines.media import NO_AUDIO_STREAM, extract_audio, probe

try:
    from . import conftest_media as cm
except ImportError:
    import conftest_media as cm

pytestmark = cm.needs_ffmpeg


def _wav(path, data: bytes, format_tag: int = 1) -> None:
    """A 16 kHz mono 16-bit WAV; ``format_tag`` 1 is PCM, anything odd has no decoder."""
    fmt = struct.pack("<HHIIHH", format_tag, 1, 16000, 32000, 2, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt "
                     + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data))
                     + data)


def _peak_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spectrum)])


def test_audio_from_video(tmp_path_factory):
    res = extract_audio(cm.av_clip(tmp_path_factory))
    assert res.present and res.missing_reason is None
    assert res.waveform.dtype == np.float32 and res.waveform.ndim == 1
    assert res.sample_rate == 16000
    assert res.duration_s == pytest.approx(2.0, abs=0.1)
    assert np.abs(res.waveform).max() <= 1.0
    assert _peak_hz(res.waveform, 16000) == pytest.approx(440, abs=2)


def test_video_without_audio_is_missing_not_silence(tmp_path_factory):
    res = extract_audio(cm.video_only(tmp_path_factory))
    assert res.waveform is None and not res.present
    assert res.missing_reason == NO_AUDIO_STREAM == "no audio stream"


def test_audio_only_file_still_gives_audio(tmp_path_factory):
    path = cm.audio_only(tmp_path_factory)
    info = probe(path, require_video=False)
    res = extract_audio(path, sample_rate=8000, info=info)
    assert res.present and res.sample_rate == 8000
    assert res.duration_s == pytest.approx(1.5, abs=0.1)
    assert _peak_hz(res.waveform, 8000) == pytest.approx(440, abs=2)


def test_decode_failure_gives_ffmpeg_reason(tmp_path):
    path = tmp_path / "odd_codec.wav"
    _wav(path, b"\x01\x02" * 4000, format_tag=0x3456)  # no decoder exists for this codec
    res = extract_audio(path)
    assert res.waveform is None
    assert res.missing_reason.startswith("audio decode failed: ")
    assert "Decoder" in res.missing_reason


def test_zero_length_audio_is_missing(tmp_path):
    path = tmp_path / "zero.wav"
    _wav(path, b"")
    res = extract_audio(path)
    assert res.waveform is None
    assert res.missing_reason == "audio stream decodes to 0 samples"


@pytest.mark.parametrize("kind", ["empty", "text"])
def test_unprobeable_file_gives_reason_not_exception(tmp_path, kind):
    path = tmp_path / "bad.mp4"
    path.write_bytes(b"" if kind == "empty" else b"just text\n" * 10)
    res = extract_audio(path)
    assert res.waveform is None
    expected = "empty file (0 bytes)" if kind == "empty" else "not a media file: "
    assert res.missing_reason.startswith(expected)


def test_audio_path_with_spaces_and_non_ascii(tmp_path_factory, tmp_path):
    path = tmp_path / "voix d'été — 声音 #2.mp4"
    shutil.copy(cm.av_clip(tmp_path_factory), path)
    assert extract_audio(path).present


def test_bad_sample_rate():
    with pytest.raises(ValueError, match="sample_rate"):
        extract_audio("whatever.mp4", sample_rate=0)
