"""Extract a clip's audio track as a mono float32 waveform, or say exactly why there is none.

Missing audio is recorded as missing (``waveform=None`` with a reason), never replaced with noise
or silence: the model is trained for missing modalities, and invented audio would teach it that
noise means something (see the datasets notes: about 21 MAFW clips have no audio track).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .probe import MediaError, MediaInfo, first_error_line, probe, run_tool

logger = logging.getLogger(__name__)

__all__ = ["AudioResult", "audio_result", "extract_audio", "NO_AUDIO_STREAM"]

NO_AUDIO_STREAM = "no audio stream"


@dataclass(frozen=True)
class AudioResult:
    """Audio of one clip.

    Attributes:
        waveform: float32 array [n_samples], mono, in [-1, 1] at ``sample_rate`` Hz; None when the
            audio is missing.
        sample_rate: Hz of ``waveform``.
        missing_reason: None when present, else a short reason ("no audio stream", ...).
    """

    waveform: np.ndarray | None
    sample_rate: int
    missing_reason: str | None = None

    @property
    def present(self) -> bool:
        return self.waveform is not None

    @property
    def duration_s(self) -> float:
        return 0.0 if self.waveform is None else len(self.waveform) / self.sample_rate


def extract_audio(path: str | os.PathLike, sample_rate: int = 16000,
                  info: MediaInfo | None = None) -> AudioResult:
    """Decode the first audio stream of ``path``, down-mixed to mono and resampled.

    Args:
        path: any media file ffmpeg reads (video with audio, or audio only).
        sample_rate: output rate in Hz (16000 suits Whisper).
        info: ``probe(path, require_video=False)`` result if the caller has it.

    Returns:
        AudioResult. Never raises for a bad clip: a file that cannot be probed, has no audio
        stream, fails to decode or decodes to zero samples gives ``waveform=None`` and the reason.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    p = Path(path)
    if info is None:
        try:
            info = probe(p, require_video=False)
        except MediaError as exc:
            return AudioResult(None, sample_rate, exc.reason)
    if not info.has_audio:
        return AudioResult(None, sample_rate, NO_AUDIO_STREAM)

    args = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", os.fspath(p),
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(sample_rate),
            "-f", "f32le", "pipe:1"]
    try:
        proc = run_tool(args)
    except MediaError as exc:
        return AudioResult(None, sample_rate, exc.reason)
    if proc.returncode != 0:
        return AudioResult(None, sample_rate,
                           f"audio decode failed: {first_error_line(proc.stderr, p)}")
    if len(proc.stdout) // 4 and proc.stderr.strip():
        logger.warning("%s: audio decoded with errors: %s", p, first_error_line(proc.stderr, p))
    return audio_result(proc.stdout, sample_rate)


def audio_result(raw: bytes, sample_rate: int) -> AudioResult:
    """ffmpeg's ``-f f32le`` output -> AudioResult (missing when it holds no whole sample)."""
    n = len(raw) // 4
    if n == 0:
        return AudioResult(None, sample_rate, "audio stream decodes to 0 samples")
    return AudioResult(np.frombuffer(raw, dtype=np.float32, count=n).copy(), sample_rate, None)
