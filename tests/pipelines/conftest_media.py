"""Shared media builders for the tests/pipelines/test_media_*.py files.

Everything is generated on the fly with ffmpeg's lavfi sources and Pillow into a session temp
folder; nothing binary is committed. Builders cache by name, so each file is made once per session.
(Not a conftest.py: the test modules import it, so it stays private to these tests.)
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_CACHE: dict[str, Path] = {}

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                  reason="ffmpeg/ffprobe not on PATH")


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; fail the test with its stderr if it fails."""
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], capture_output=True)
    if proc.returncode != 0:
        pytest.fail(f"ffmpeg {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")


def media_dir(factory: pytest.TempPathFactory) -> Path:
    if "_dir" not in _CACHE:
        _CACHE["_dir"] = factory.mktemp("media")
    return _CACHE["_dir"]


def build(factory: pytest.TempPathFactory, name: str, *args: str) -> Path:
    """Create ``name`` in the session media folder with ``ffmpeg *args name`` (once)."""
    if name not in _CACHE:
        out = media_dir(factory) / name
        ffmpeg(*args, str(out))
        _CACHE[name] = out
    return _CACHE[name]


def testsrc(size: str = "64x48", rate: float = 25, duration: float = 2) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={duration}"]


def sine(duration: float = 2, freq: int = 440) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=44100:duration={duration}"]


H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def av_clip(factory: pytest.TempPathFactory) -> Path:
    """2 s, 64x48, 25 fps (50 frames) H.264 + 440 Hz AAC."""
    return build(factory, "av.mp4", *testsrc(), *sine(), *H264, "-c:a", "aac", "-shortest")


def video_only(factory: pytest.TempPathFactory) -> Path:
    """2 s, 64x48, 25 fps, no audio stream."""
    return build(factory, "video_only.mp4", *testsrc(), *H264)


def audio_only(factory: pytest.TempPathFactory) -> Path:
    """1.5 s of 440 Hz AAC in an .m4a, no video."""
    return build(factory, "audio_only.m4a", *sine(1.5), "-c:a", "aac")


def astronaut(size: int = 256) -> np.ndarray:
    """skimage's astronaut (one real face), uint8 [size, size, 3]."""
    data = pytest.importorskip("skimage.data")
    return np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.BILINEAR))


def gradient(h: int = 96, w: int = 128) -> np.ndarray:
    """A smooth colour gradient: no face anywhere, uint8 [h, w, 3]."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                    np.full_like(x, 128)], axis=-1)
    return img.astype(np.uint8)
