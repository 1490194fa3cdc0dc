"""Per-clip decoding (stage 1 and 3): sampled frames and 16 kHz audio, never raising.

Runs in worker threads (the work is in ffmpeg subprocesses and PIL, which release the GIL).
Every failure becomes a short per-clip reason; the run goes on.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from pipelines.media import (MediaError, extract_audio, probe, read_frame_folder, read_video_frames,
                             read_video_frames_and_audio)
from pipelines.sources import ClipRecord

log = logging.getLogger(__name__)


@dataclass
class DecodedClip:
    """What decoding one clip produced. ``frames`` None = no usable video (see ``video_reason``)."""

    record: ClipRecord
    frames: np.ndarray | None = None  # uint8 [T, H, W, 3]
    n_valid: int = 0
    n_source_frames: int = 0
    audio: np.ndarray | None = None  # float32 [n] at the cache's sample rate, cut to S samples
    speech: np.ndarray | None = None  # the whole audio, uncut, for records whose text comes from ASR
    audio_reason: str | None = None
    video_reason: str | None = None
    fatal: str | None = None  # the file cannot be read at all
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def decode_clip(record: ClipRecord, T: int, sample_rate: int, max_samples: int,
                joint_audio: bool = True) -> DecodedClip:
    """Probe, sample T frames and extract audio for one clip.

    With ``joint_audio`` (the default) a clip with both streams is decoded by one ffmpeg process
    giving frames and audio together (``read_video_frames_and_audio``: two processes per clip
    instead of three); whenever that process reports any problem the clip is decoded again the
    separate way, so results and reasons are the same either way (``joint_audio=False`` forces the
    separate way; the tests compare the two). ``seconds["decode"]`` then includes the audio.
    """
    out = DecodedClip(record)
    t0 = time.perf_counter()
    audio = None  # the AudioResult when the frames' ffmpeg already gave it
    try:
        if record.media_kind == "frames":
            sampled = read_frame_folder(record.media_path, T)
            out.audio_reason = "frame folder: no audio"
        else:
            info = probe(record.media_path, require_video=False)
            joint = (read_video_frames_and_audio(record.media_path, T, info, sample_rate)
                     if joint_audio and info.has_video and info.has_audio else None)
            if joint is not None:
                sampled, audio = joint
            elif info.has_video:
                sampled = read_video_frames(record.media_path, T, info=info)
            else:
                sampled = None
                out.video_reason = "no video stream"
        if sampled is not None:
            out.frames, out.n_valid, out.n_source_frames = sampled.frames, sampled.n_valid, sampled.source_frame_count
    except MediaError as exc:
        out.fatal = exc.reason
    except Exception as exc:  # a decoder crash on one clip must not end the run
        log.exception("unexpected error decoding %s", record.media_path)
        out.fatal = f"decode error: {type(exc).__name__}: {exc}"
    out.seconds["decode"] = time.perf_counter() - t0

    if record.listed_frames is not None and out.frames is not None and record.listed_frames != out.n_source_frames:
        out.notes.append(f"list says {record.listed_frames} frames, found {out.n_source_frames}")

    t0 = time.perf_counter()
    if record.media_kind == "video" and out.fatal is None:
        result = (audio if audio is not None
                  else extract_audio(record.media_path, sample_rate=sample_rate, info=info))
        if result.present:
            wave = result.waveform[:max_samples]
            if len(result.waveform) > max_samples:
                out.notes.append(f"audio cut to the first {max_samples / sample_rate:g} s")
            out.audio = np.ascontiguousarray(wave, dtype=np.float32)
            if record.text_source == "asr":  # the transcript covers the clip, not the model's cut
                out.speech = np.asarray(result.waveform, dtype=np.float32)
        else:
            out.audio_reason = result.missing_reason
    elif out.fatal is not None:
        out.audio_reason = out.fatal
    out.seconds["audio"] = time.perf_counter() - t0
    return out
