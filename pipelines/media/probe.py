"""Read a media file's stream facts with one ``ffprobe`` call, and turn failures into short reasons.

``probe(path)`` runs ``ffprobe -count_packets -show_streams -show_format -of json`` (a list of
arguments, never a shell, so paths with spaces or non-ASCII characters are safe). Counting packets
only demuxes the file (no decoding: ~50 ms for a 2,400-frame clip), and it gives the real number of
video frames the container holds, which is worth more than the count the container header (or a
dataset's list file) claims. It also exposes files cut short after their header: the header lists
N frames but fewer can be read.

Every failure raises :class:`MediaError` whose ``reason`` is a short, per-clip message meant for a
prep report ("empty file (0 bytes)", "not a media file: ...", "no video stream",
"truncated or corrupt: ...").
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["MediaError", "MediaInfo", "probe", "run_tool", "run_tool_two_outputs"]

# First bytes of containers we know; a file that starts like one of these but cannot be opened is
# damaged, not "something else". Offsets: MP4/MOV box type at byte 4, the rest at byte 0.
_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot", b"styp"}
_MAGIC = (
    b"\x1a\x45\xdf\xa3",  # Matroska / WebM
    b"RIFF",  # AVI, WAV
    b"OggS",
    b"fLaC",
    b"FLV",
    b"ID3",  # MP3 with ID3 tag
    b"\x00\x00\x01\xba",  # MPEG-PS
    b"\x30\x26\xb2\x75",  # ASF / WMV
)


class MediaError(Exception):
    """A clip that cannot be used; ``reason`` is a short message for the per-clip report.

    Args:
        reason: what is wrong with this clip, e.g. ``"empty file (0 bytes)"``.
        path: the clip, when known (kept apart from ``reason`` so reports stay short).
    """

    def __init__(self, reason: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = None if path is None else str(path)

    def __str__(self) -> str:
        return self.reason if self.path is None else f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class MediaInfo:
    """Facts about one media file.

    Attributes:
        duration_s: container duration in seconds (0.0 when unknown).
        fps: average frame rate in frames/s (0.0 without video).
        n_frames: video frames that can be read: counted packets; else the header's count; else
            ``round(duration_s * fps)`` (see ``frames_counted``).
        width, height: coded frame size in pixels, before rotation (0 without video).
        rotation: display rotation in degrees, 0/90/180/270, counter-clockwise, as ffprobe
            reports it (display matrix; else the old ``rotate`` tag). Phone clips shot upright
            usually read 270 (-90). Frames from ``read_video_frames`` already have it applied.
        has_video, has_audio: whether such a stream exists (cover-art pictures do not count).
        audio_sample_rate: Hz of the first audio stream (0 without audio).
        audio_channels: channels of the first audio stream (0 without audio).
        frames_counted: True when ``n_frames`` comes from counting packets in the file.
        format_name: ffprobe's container name, e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``.
        start_time_s: container start time in seconds (timestamps are relative to it).
    """

    duration_s: float
    fps: float
    n_frames: int
    width: int
    height: int
    rotation: int
    has_video: bool
    has_audio: bool
    audio_sample_rate: int
    audio_channels: int
    frames_counted: bool = False
    format_name: str = ""
    start_time_s: float = 0.0

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of upright frames, i.e. after ``rotation`` is applied."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


def _require_tool(name: str) -> None:
    if shutil.which(name) is None:
        raise RuntimeError(
            f"`{name}` was not found on PATH; install FFmpeg (e.g. `apt-get install ffmpeg` "
            "or `conda install -c conda-forge ffmpeg`) and retry."
        )


def run_tool(args: list[str], timeout_s: float = 600.0) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg/ffprobe with list arguments (no shell) and capture its output.

    Raises:
        RuntimeError: the tool is not installed (an environment problem, not a clip problem).
        MediaError: the tool ran longer than ``timeout_s`` seconds (a damaged file can stall it;
            one such clip must not stall a whole prep run).
    """
    _require_tool(args[0])
    try:
        return subprocess.run(args, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        path = args[args.index("-i") + 1] if "-i" in args else args[-1]
        raise MediaError(f"{args[0]} gave no result within {timeout_s:.0f} s (damaged file?)",
                         path) from None


def run_tool_two_outputs(args_for: Callable[[str], list[str]], timeout_s: float = 600.0
                         ) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
    """Like :func:`run_tool` for an ffmpeg with a second output: ``args_for(url)`` builds the
    arguments, ``url`` (``"pipe:N"``) naming the write end of a pipe passed to the child.

    stdout and stderr are drained by ``communicate`` while a thread drains the second pipe, so the
    child never blocks on a full pipe whatever order it writes its outputs in.

    Returns:
        (the completed process with stdout/stderr, the bytes written to the second output).

    Raises:
        RuntimeError, MediaError: as :func:`run_tool`.
    """
    _require_tool(args_for("pipe:3")[0])
    read_fd, write_fd = os.pipe()
    args = args_for(f"pipe:{write_fd}")
    try:
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=(write_fd,))
        finally:
            os.close(write_fd)  # the child holds its own copy; EOF comes when it exits
    except BaseException:
        os.close(read_fd)
        raise
    second: list[bytes] = []
    with os.fdopen(read_fd, "rb") as reader:
        drain = threading.Thread(target=lambda: second.append(reader.read()), daemon=True)
        drain.start()
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            drain.join()
            path = args[args.index("-i") + 1] if "-i" in args else args[-1]
            raise MediaError(f"{args[0]} gave no result within {timeout_s:.0f} s (damaged file?)",
                             path) from None
        except BaseException:
            proc.kill()
            proc.wait()
            drain.join()
            raise
        drain.join()
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr), b"".join(second)


def first_error_line(stderr: bytes, path: str | os.PathLike | None = None) -> str:
    """The most telling line of an ffmpeg/ffprobe stderr, without the ``[demuxer @ 0x..]`` noise
    and with the file's own path removed (reasons are per clip already)."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return "no error message"
    cleaned = []
    for line in lines:
        line = re.sub(r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*", "", line)
        if path is not None:
            line = line.replace(f"{os.fspath(path)}: ", "")
        cleaned.append(line)
    # ffmpeg's last line is usually the summary ("Invalid data found when processing input");
    # a line naming the cause (moov atom not found, partial file) is more useful, so prefer it.
    for key in ("moov atom not found", "partial file", "Invalid data", "No such file"):
        for line in cleaned:
            if key in line:
                return line
    return cleaned[-1]


def _looks_like_media(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(189)
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return True
    if head.startswith(b"\xff") and len(head) > 1 and head[1] & 0xE0 == 0xE0:  # MPEG audio sync
        return True
    if len(head) == 189 and head[0] == head[188] == 0x47:  # MPEG-TS: sync byte every 188 bytes
        return True
    return head.startswith(_MAGIC)


def _fraction(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value)


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    tag = stream.get("tags", {}).get("rotate")
    if tag is not None:
        try:
            return int(round(float(tag))) % 360
        except ValueError:
            return 0
    return 0


def _int(value: object, default: int = 0) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def probe(path: str | os.PathLike, require_video: bool = True) -> MediaInfo:
    """Probe one media file.

    Args:
        path: the file; any characters are fine.
        require_video: raise ``MediaError("no video stream")`` for files without video. Pass
            False for audio work (an audio-only file then probes fine with ``has_video=False``).

    Returns:
        MediaInfo for the first video stream and the first audio stream.

    Raises:
        MediaError: file missing, empty, not media, truncated/corrupt, or (if asked) no video.
    """
    p = Path(path)
    if not p.exists():
        raise MediaError("file not found", path)
    if p.is_dir():
        raise MediaError("is a folder, not a media file (use read_frame_folder for frames)", path)
    if p.stat().st_size == 0:
        raise MediaError("empty file (0 bytes)", path)

    args = ["ffprobe", "-v", "error", "-count_packets", "-show_streams", "-show_format",
            "-of", "json", os.fspath(p)]
    proc = run_tool(args)
    if proc.returncode != 0:
        line = first_error_line(proc.stderr, p)
        if _looks_like_media(p):
            raise MediaError(f"truncated or corrupt: {line}", path)
        raise MediaError(f"not a media file: {line}", path)
    try:
        data = json.loads(proc.stdout.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise MediaError(f"not a media file: ffprobe printed unreadable output ({exc})",
                         path) from None

    streams = data.get("streams", [])
    fmt = data.get("format", {})
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise MediaError("not a media file: no audio or video streams", path)
    if video is None and require_video:
        raise MediaError("no video stream", path)

    duration = _fraction(fmt.get("duration")) or _fraction((video or audio or {}).get("duration"))
    fps = n_frames = width = height = rotation = 0
    counted = False
    if video is not None:
        fps = _fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate"))
        listed = _int(video.get("nb_frames"))
        read = _int(video.get("nb_read_packets"), -1)
        stderr = proc.stderr.decode("utf-8", "replace")
        if read >= 0 and listed > 0 and read < listed:
            raise MediaError(
                f"truncated or corrupt: header lists {listed} video frames but only {read} "
                f"can be read ({first_error_line(proc.stderr, p)})", path)
        if "partial file" in stderr:
            raise MediaError(f"truncated or corrupt: {first_error_line(proc.stderr, p)}", path)
        if read > 0:
            n_frames, counted = read, True
        elif listed > 0:
            n_frames = listed
        else:
            n_frames = max(1, round(duration * fps)) if duration > 0 and fps > 0 else 0
        if n_frames == 0:
            raise MediaError("truncated or corrupt: the video stream holds no frames", path)
        if fps == 0.0 and duration > 0:
            fps = n_frames / duration
        width, height = _int(video.get("width")), _int(video.get("height"))
        rotation = _rotation(video)

    info = MediaInfo(
        duration_s=duration,
        fps=fps,
        n_frames=n_frames,
        width=width,
        height=height,
        rotation=rotation,
        has_video=video is not None,
        has_audio=audio is not None,
        audio_sample_rate=_int((audio or {}).get("sample_rate")),
        audio_channels=_int((audio or {}).get("channels")),
        frames_counted=counted,
        format_name=str(fmt.get("format_name", "")),
        start_time_s=_fraction(fmt.get("start_time")),
    )
    logger.debug("probed %s: %s", p, info)
    return info
