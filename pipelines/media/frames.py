"""Sample T frames from a clip: from a video file (decoding only what is needed) or a frame folder.

Sampling rule (``sample_indices``): split the clip's ``n`` frames into ``T`` equal segments and
take the frame at the centre of each, ``floor((k + 0.5) * n / T)`` for ``k = 0..T-1``. For
``n >= T`` these indices are strictly increasing. A clip shorter than ``T`` gives all its frames
``0..n-1`` followed by the last index repeated up to ``T``; ``n_valid = n`` records how many are
real. The rule depends only on ``(n, T)``: the same clip samples the same frames on every run.

Decoding (``read_video_frames``): one ``ffmpeg`` process with a ``select`` filter on decoded frame
numbers, ``-fps_mode passthrough`` (so the numbers are real decoded frames, also for variable frame
rate), ``-frames:v`` to stop after the last wanted frame, and raw RGB piped to stdout. Nothing is
written to disk. FFmpeg applies rotation metadata itself, so frames come back upright.

For long, large clips one ``-ss`` input seek per sampled frame is faster, because select must still
decode every frame up to the last one wanted; ``method="auto"`` picks seeking then (see
``choose_method``). Seeking goes to exact frame timestamps read from the packets (demux only), so
it returns the same frames as select, variable frame rate included (tested).

Measured on the project's 2-core CPU (T=16, ffmpeg 5.1, H.264 from lavfi testsrc, best of 3;
ranges where other jobs shared the CPU). "full" = every frame decoded to RGB and piped out,
discarded, i.e. the floor for "dump all frames" before any disk writes:

=========================================  =============  ==============  ===========
clip                                       select filter  seek per frame  full decode
=========================================  =============  ==============  ===========
20 min, 32x32, 2 fps (2,400 frames)        0.17 s         1.0-1.4 s       0.18-0.25 s
20 min, 640x360, 25 fps (30,000 frames)    2.4-4.5 s      1.3-1.8 s       4.5-7.0 s
5 s, 1280x720, 25 fps (125 frames; MAFW)   0.19-0.23 s    1.6-1.9 s       0.18-0.22 s
=========================================  =============  ==============  ===========

A seek costs ~0.08-0.1 s (mostly process start-up); select decodes ~0.35-0.6 ns per pixel.
DFER clips are seconds long, so nearly every clip uses select.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .audio import AudioResult, audio_result
from .probe import MediaError, MediaInfo, first_error_line, probe, run_tool, run_tool_two_outputs

logger = logging.getLogger(__name__)

__all__ = ["SampledFrames", "sample_indices", "read_video_frames", "read_video_frames_and_audio",
           "read_frame_folder",
           "natural_sorted", "choose_method", "count_decoded_frames",
           "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Pixels that select-decoding gets through in the time one seek takes (see choose_method).
SEEK_BREAK_EVEN_PX = 200_000_000


@dataclass(frozen=True)
class SampledFrames:
    """T frames sampled from one clip.

    Attributes:
        frames: uint8 array [T, H, W, 3], RGB, upright.
        n_valid: how many of the T frames are distinct real frames (< T when the clip is short;
            the rest repeat the last frame).
        source_frame_count: real number of frames in the clip (counted, not taken from a list file).
        indices: int64 array [T], the source frame number of each returned frame.
    """

    frames: np.ndarray
    n_valid: int
    source_frame_count: int
    indices: np.ndarray


def sample_indices(n_frames: int, T: int) -> tuple[np.ndarray, int]:
    """Indices of the T frames to sample from a clip of ``n_frames`` frames.

    Args:
        n_frames: frames in the clip (>= 1).
        T: frames wanted (>= 1).

    Returns:
        (indices, n_valid): int64 array [T], sorted, each in ``[0, n_frames)``; ``n_valid`` is
        ``min(n_frames, T)``. See the module docstring for the rule and the padding.
    """
    if T < 1:
        raise ValueError(f"T must be >= 1 (got T={T}); it is the number of frames to sample.")
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1 (got {n_frames}); a clip without frames "
                         "cannot be sampled.")
    if n_frames >= T:
        k = np.arange(T, dtype=np.int64)
        # Integer arithmetic keeps the result exact: floor((2k + 1) * n / (2T)).
        return ((2 * k + 1) * n_frames) // (2 * T), T
    idx = np.concatenate([np.arange(n_frames, dtype=np.int64),
                          np.full(T - n_frames, n_frames - 1, dtype=np.int64)])
    return idx, n_frames


def _select_args(path: Path, wanted: np.ndarray) -> list[str]:
    """ffmpeg arguments that write the frames numbered ``wanted`` as raw RGB to stdout."""
    expr = "+".join(f"eq(n,{int(i)})" for i in wanted)
    return ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", os.fspath(path),
            "-map", "0:v:0", "-an", "-sn", "-dn",
            "-vf", f"select='{expr}'", "-fps_mode", "passthrough", "-frames:v", str(len(wanted)),
            "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]


def _raw_frames(data: bytes, size: tuple[int, int], path: Path) -> np.ndarray:
    w, h = size
    frame_bytes = w * h * 3
    k = len(data) // frame_bytes
    if len(data) % frame_bytes:
        raise MediaError(f"decoded frame size does not match {w}x{h} (rotation or size change "
                         "mid-stream?)", path)
    return np.frombuffer(data, dtype=np.uint8, count=k * frame_bytes).reshape(k, h, w, 3)


def _decode_select(path: Path, wanted: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Decode the frames numbered ``wanted`` (sorted, unique) in one ffmpeg pass.

    Returns (frames [k, H, W, 3] with k <= len(wanted), ffmpeg stderr reason or "")."""
    proc = run_tool(_select_args(path, wanted))
    frames = _raw_frames(proc.stdout, size, path)
    reason = first_error_line(proc.stderr, path) if proc.returncode != 0 else ""
    return frames, reason


def _frame_times(path: Path, info: MediaInfo) -> np.ndarray | None:
    """Presentation time (s, relative to the container start) of every video frame, in display
    order, from a demux-only ffprobe pass; None when some packet has no timestamp."""
    args = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
            "-of", "csv=p=0", os.fspath(path)]
    proc = run_tool(args)
    if proc.returncode != 0:
        return None
    try:
        pts = np.array([float(x.strip(",")) for x in proc.stdout.decode().split()],
                       dtype=np.float64)
    except ValueError:  # "N/A": no timestamps (e.g. raw streams), so seeking cannot be exact
        return None
    return np.sort(pts) - info.start_time_s


def _decode_seek(path: Path, times: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Decode one frame at each time in ``times`` (seconds, sorted) with one input seek each.

    ``-ss`` before ``-i`` jumps to the preceding keyframe and decodes forward, dropping frames
    earlier than the target; the target sits 0.5 ms before the frame's own timestamp, so frames
    that exact (frame gaps are far larger than 0.5 ms) come out, also at variable frame rate."""
    w, h = size
    out = []
    for t in times:
        args = ["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{max(0.0, t - 5e-4):.6f}",
                "-i", os.fspath(path), "-map", "0:v:0", "-an", "-sn", "-dn", "-frames:v", "1",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        proc = run_tool(args)
        if len(proc.stdout) != w * h * 3:
            return np.stack(out) if out else np.zeros((0, h, w, 3), np.uint8)
        out.append(np.frombuffer(proc.stdout, dtype=np.uint8).reshape(h, w, 3))
    return np.stack(out)


def choose_method(info: MediaInfo, T: int) -> str:
    """"seek" for long, large clips in seekable containers, else "select".

    One seek costs about as much as select-decoding ``SEEK_BREAK_EVEN_PX`` pixels (measured, see
    the module docstring: ~0.08 s per seek vs ~0.4 ns per decoded pixel), so seeking wins only
    when the whole clip holds more than T times that many pixels (T=16: > ~2.3 min of 720p, >
    ~9 min of 640x360). Only MP4/MOV and Matroska/WebM, whose indexes make seeks reliable."""
    pixels = info.n_frames * info.width * info.height
    seekable = any(name in info.format_name for name in ("mp4", "matroska"))
    return "seek" if seekable and pixels > T * SEEK_BREAK_EVEN_PX else "select"


def count_decoded_frames(path: str | os.PathLike) -> int:
    """Exact number of decodable video frames (decodes the whole stream; slow, used as a fallback
    when a clip yields fewer frames than its container lists)."""
    args = ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", os.fspath(path)]
    proc = run_tool(args)
    text = proc.stdout.decode("ascii", "replace").strip().split(",")[0]
    try:
        return int(text)
    except ValueError:
        raise MediaError(f"truncated or corrupt: frames cannot be counted "
                         f"({first_error_line(proc.stderr, path)})", path) from None


def read_video_frames(path: str | os.PathLike, T: int, info: MediaInfo | None = None,
                      method: str = "auto") -> SampledFrames:
    """Decode the T sampled frames of a video file (and no others).

    Args:
        path: video file.
        T: frames to sample (see ``sample_indices``).
        info: result of ``probe(path)`` if the caller has it (saves one ffprobe call).
        method: "auto" (see ``choose_method``), "select" (one decode pass, exact) or "seek"
            (one input seek per frame; falls back to "select" when timestamps are missing).

    Returns:
        SampledFrames with frames [T, H, W, 3] uint8, upright (H, W after rotation; pixels are
        not resampled for non-square pixel aspect ratios). ``source_frame_count`` is the real
        frame count: counted by ``probe``, recounted by decoding when ``info`` holds a guess or
        when decoding yields fewer frames than ``info`` claims.

    Raises:
        MediaError: the file cannot be probed or decoded.
    """
    p = Path(path)
    info = info if info is not None else probe(p)
    if not info.has_video:
        raise MediaError("no video stream", p)
    if method not in ("auto", "select", "seek"):
        raise ValueError(f"method must be 'auto', 'select' or 'seek', got {method!r}")
    if method == "auto":
        method = choose_method(info, T)
    size = info.display_size
    # probe() counts the packets; a count it had to guess from duration x fps is redone exactly.
    n = info.n_frames if info.frames_counted else count_decoded_frames(p)
    idx, n_valid = sample_indices(n, T)
    wanted = np.unique(idx)

    if method == "seek":
        times = _frame_times(p, info)
        if times is not None and len(times) == n:
            frames = _decode_seek(p, times[wanted], size)
            if len(frames) == len(wanted):
                return SampledFrames(frames[np.searchsorted(wanted, idx)], n_valid, n, idx)
        logger.info("%s: exact seeking not possible, decoding with the select filter", p)

    frames, reason = _decode_select(p, wanted, size)
    if len(frames) < len(wanted):
        # The container promised more frames than decode (edit lists, broken packets): count the
        # decodable frames, resample from the real count, and record that count.
        real = count_decoded_frames(p)
        logger.warning("%s: expected %d frames, %d decodable; resampling", p, n, real)
        if real < 1:
            raise MediaError("truncated or corrupt: no decodable video frames"
                             f"{' (' + reason + ')' if reason else ''}", p)
        n = real
        idx, n_valid = sample_indices(n, T)
        wanted = np.unique(idx)
        frames, reason = _decode_select(p, wanted, size)
        if len(frames) < len(wanted):
            raise MediaError(f"truncated or corrupt: decoded {len(frames)} of {len(wanted)} "
                             f"sampled frames{' (' + reason + ')' if reason else ''}", p)
    elif reason:
        logger.warning("%s: ffmpeg reported an error but all frames decoded: %s", p, reason)
    return SampledFrames(np.ascontiguousarray(frames[np.searchsorted(wanted, idx)]),
                         n_valid, n, idx)


def read_video_frames_and_audio(path: str | os.PathLike, T: int, info: MediaInfo,
                                sample_rate: int = 16000) -> tuple[SampledFrames, AudioResult] | None:
    """The T sampled frames and the audio of a clip from one ffmpeg process instead of two.

    Every ffmpeg start costs ~58 ms on the project's 2-core CPU before any work, most of the
    ~190 ms a short clip took with probe + frames + audio as three processes (benchmarks/perf,
    finding 7). The audio is a second output of the frames' ffmpeg (``-map 0:a:0 -ac 1 -ar
    sample_rate -f f32le`` to a pipe handed to the child), with the same options as
    ``extract_audio``, so frames and samples are byte-identical to the two separate calls.

    Args:
        path: video file.
        T: frames to sample.
        info: ``probe(path, require_video=False)`` of this file.
        sample_rate: audio rate in Hz.

    Returns:
        (``read_video_frames(path, T, info)``, ``extract_audio(path, sample_rate, info)``) when
        one process gives exactly that; None otherwise, and the caller makes the two separate
        calls, which keep their own handling of damaged clips (recounting frames, per-clip
        reasons). None when: the clip lacks a video or an audio stream, its frames were not
        counted, seeking applies (``choose_method``), or ffmpeg timed out, exited non-zero,
        printed anything at ``-v error`` (any decoding error), or gave fewer frames than wanted.
    """
    p = Path(path)
    if not (info.has_video and info.has_audio and info.frames_counted):
        return None
    if choose_method(info, T) != "select":
        return None
    n = info.n_frames
    idx, n_valid = sample_indices(n, T)
    wanted = np.unique(idx)
    audio_args = ["-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(sample_rate),
                  "-f", "f32le"]
    try:
        proc, audio = run_tool_two_outputs(lambda url: _select_args(p, wanted) + audio_args + [url])
    except MediaError:  # timed out: the separate calls tell whether frames or audio stalled
        return None
    if proc.returncode != 0 or proc.stderr.strip():
        return None
    try:
        frames = _raw_frames(proc.stdout, info.display_size, p)
    except MediaError:  # the separate call raises it again, with the same reason
        return None
    if len(frames) < len(wanted):
        return None
    sampled = SampledFrames(np.ascontiguousarray(frames[np.searchsorted(wanted, idx)]),
                            n_valid, n, idx)
    return sampled, audio_result(audio, sample_rate)


def _natural_key(name: str) -> list:
    # "frame10.jpg" -> ["frame", 10, ".jpg"]; numbers compare as numbers, so 2 < 10 and 002 < 010.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def natural_sorted(names: list[str]) -> list[str]:
    """Sort file names the way people number frames: 1, 2, 10 (also 001, 002, 010)."""
    return sorted(names, key=lambda s: (_natural_key(s), s))


def read_frame_folder(directory: str | os.PathLike, T: int) -> SampledFrames:
    """Sample T frames from a folder of pre-extracted frames (DFEW clip_224x224, FERV39k).

    Files are ordered by natural sort of their names; only the sampled files are read.

    Returns:
        SampledFrames with frames [T, H, W, 3] uint8; ``source_frame_count`` is the number of
        image files found in the folder.

    Raises:
        MediaError: folder missing or empty, an image unreadable, or frame sizes differ.
    """
    d = Path(directory)
    if not d.is_dir():
        raise MediaError("frame folder not found", d)
    names = natural_sorted([f.name for f in d.iterdir()
                            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES])
    if not names:
        raise MediaError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in frame folder", d)
    idx, n_valid = sample_indices(len(names), T)
    wanted = np.unique(idx)
    loaded: list[np.ndarray] = []
    for i in wanted:
        try:
            with Image.open(d / names[i]) as im:
                loaded.append(np.asarray(im.convert("RGB")))
        except (OSError, ValueError) as exc:
            raise MediaError(f"unreadable image {names[i]}: {exc}", d) from None
        if loaded[-1].shape != loaded[0].shape:
            raise MediaError(f"frame sizes differ: {names[wanted[0]]} is "
                             f"{loaded[0].shape[1]}x{loaded[0].shape[0]}, {names[i]} is "
                             f"{loaded[-1].shape[1]}x{loaded[-1].shape[0]}", d)
    frames = np.stack(loaded)[np.searchsorted(wanted, idx)]
    return SampledFrames(frames, n_valid, len(names), idx)
