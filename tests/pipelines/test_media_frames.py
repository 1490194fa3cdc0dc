"""Frame sampling: the index rule, sampled-only decoding of video files, and frame folders."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from PIL import Image

from pipelines.media import (
    MediaError,
    natural_sorted,
    probe,
    read_frame_folder,
    read_video_frames,
    sample_indices,
)
from pipelines.media import frames as frames_mod

try:
    from . import conftest_media as cm
except ImportError:
    import conftest_media as cm


# --- sample_indices -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 15, 16, 17, 31, 100, 1001, 30000])
@pytest.mark.parametrize("T", [1, 2, 8, 16])
def test_sample_indices_properties(n, T):
    idx, n_valid = sample_indices(n, T)
    assert idx.shape == (T,) and idx.dtype == np.int64
    assert np.all(np.diff(idx) >= 0), "sorted"
    assert idx.min() >= 0 and idx.max() < n, "in range"
    assert n_valid == min(n, T)
    assert len(np.unique(idx)) == n_valid, "n_valid distinct real frames"
    if n >= T:
        assert np.all(np.diff(idx) > 0)
        seg = n / T  # each index lies inside its own segment
        assert np.all(idx >= np.floor(np.arange(T) * seg))
        assert np.all(idx < np.ceil((np.arange(T) + 1) * seg))
    else:  # all frames, then the last one repeated
        assert list(idx) == list(range(n)) + [n - 1] * (T - n)
    again, _ = sample_indices(n, T)
    assert np.array_equal(idx, again), "deterministic"


def test_sample_indices_centres():
    assert sample_indices(10, 5)[0].tolist() == [1, 3, 5, 7, 9]
    assert sample_indices(100, 4)[0].tolist() == [12, 37, 62, 87]


@pytest.mark.parametrize("n, T", [(0, 4), (5, 0), (-1, 3)])
def test_sample_indices_rejects_bad_sizes(n, T):
    with pytest.raises(ValueError, match="must be >= 1"):
        sample_indices(n, T)


# --- video files ----------------------------------------------------------------------------

def _mean_colour_row(frames: np.ndarray) -> np.ndarray:
    return frames.reshape(len(frames), -1).mean(axis=1)


@cm.needs_ffmpeg
def test_read_video_frames_returns_the_sampled_frames(tmp_path_factory):
    path = cm.av_clip(tmp_path_factory)
    out = read_video_frames(path, 8)
    assert out.frames.shape == (8, 48, 64, 3) and out.frames.dtype == np.uint8
    assert out.n_valid == 8 and out.source_frame_count == 50
    assert out.indices.tolist() == sample_indices(50, 8)[0].tolist()
    # testsrc scrolls, so consecutive sampled frames differ; compare with a full decode.
    full = np.frombuffer(cm_full_decode(path), np.uint8).reshape(50, 48, 64, 3)
    assert np.array_equal(out.frames, full[out.indices])


def cm_full_decode(path) -> bytes:
    import subprocess
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo",
                           "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout


@cm.needs_ffmpeg
def test_one_frame_video_is_padded(tmp_path_factory):
    path = cm.build(tmp_path_factory, "one_frame.mp4", *cm.testsrc(), *cm.H264, "-frames:v", "1")
    out = read_video_frames(path, 8)
    assert out.n_valid == 1 and out.source_frame_count == 1
    assert out.indices.tolist() == [0] * 8
    assert out.frames.shape == (8, 48, 64, 3)
    assert all(np.array_equal(f, out.frames[0]) for f in out.frames)


@cm.needs_ffmpeg
def test_short_clip_padding_repeats_last_frame(tmp_path_factory):
    path = cm.build(tmp_path_factory, "five_frames.mp4", *cm.testsrc(), *cm.H264, "-frames:v", "5")
    out = read_video_frames(path, 8)
    assert out.n_valid == 5 and out.indices.tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert np.array_equal(out.frames[7], out.frames[4])
    assert not np.array_equal(out.frames[3], out.frames[4])


@cm.needs_ffmpeg
def test_long_clip_decodes_fast(tmp_path_factory):
    short = cm.av_clip(tmp_path_factory)
    # 20 minutes at 2 fps = 2,400 frames.
    long = cm.build(tmp_path_factory, "long_20min.mp4",
                    *cm.testsrc(size="32x32", rate=2, duration=1200), *cm.H264)
    t0 = time.perf_counter()
    read_video_frames(short, 16)
    t_short = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = read_video_frames(long, 16)
    t_long = time.perf_counter() - t0
    assert out.source_frame_count == 2400 and out.n_valid == 16
    assert out.indices[-1] == 2325  # floor(31.5 * 2400 / 16)
    assert t_long < max(5 * t_short, 2.0), (t_short, t_long)


@cm.needs_ffmpeg
def test_seek_and_select_give_the_same_frames(tmp_path_factory):
    long = cm.build(tmp_path_factory, "long_320.mp4",
                    *cm.testsrc(size="96x64", rate=25, duration=60), *cm.H264, "-g", "100")
    info = probe(long)
    a = read_video_frames(long, 6, info, method="select")
    b = read_video_frames(long, 6, info, method="seek")
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.frames, b.frames)


def test_choose_method_prefers_select_for_short_clips():
    from pipelines.media import MediaInfo
    base = dict(duration_s=5, fps=25, rotation=0, has_video=True, has_audio=True,
                audio_sample_rate=16000, audio_channels=1, format_name="mov,mp4,m4a,3gp,3g2,mj2")
    short = MediaInfo(n_frames=125, width=1280, height=720, **base)
    long = MediaInfo(n_frames=30000, width=640, height=360, **base)
    assert frames_mod.choose_method(short, 16) == "select"
    assert frames_mod.choose_method(long, 16) == "seek"


@cm.needs_ffmpeg
def test_portrait_video(tmp_path_factory):
    path = cm.build(tmp_path_factory, "portrait.mp4", *cm.testsrc(size="48x80"), *cm.H264)
    out = read_video_frames(path, 4)
    assert out.frames.shape == (4, 80, 48, 3)


@cm.needs_ffmpeg
def test_rotated_video_comes_back_upright(tmp_path_factory):
    src = cm.video_only(tmp_path_factory)
    rot = cm.build(tmp_path_factory, "rot90.mp4", "-i", str(src), "-c", "copy",
                   "-metadata:s:v:0", "rotate=90")
    plain = read_video_frames(src, 4)
    out = read_video_frames(rot, 4)
    assert out.frames.shape == (4, 64, 48, 3)  # 64x48 stored, shown as 48 wide x 64 tall
    # ffprobe reports rotation 90: the stored picture is turned 90 degrees counter-clockwise.
    expected = np.rot90(plain.frames, k=1, axes=(1, 2))
    assert np.abs(out.frames.astype(int) - expected).mean() < 2


@cm.needs_ffmpeg
def test_variable_frame_rate_counts_real_frames(tmp_path_factory):
    # Keep frames 0-19 then every 4th frame of 100: 40 real frames with uneven gaps.
    path = cm.build(tmp_path_factory, "vfr.mp4", *cm.testsrc(duration=4),
                    "-vf", "select='lt(n,20)+not(mod(n,4))'", "-fps_mode", "vfr", *cm.H264)
    info = probe(path)
    assert info.n_frames == 40
    out = read_video_frames(path, 8, info)
    assert out.source_frame_count == 40 and out.n_valid == 8
    seek = read_video_frames(path, 8, info, method="seek")
    assert np.array_equal(out.frames, seek.frames)


@cm.needs_ffmpeg
def test_wrong_frame_count_is_recounted(tmp_path_factory):
    path = cm.av_clip(tmp_path_factory)
    info = probe(path)
    import dataclasses
    lying = dataclasses.replace(info, n_frames=80)  # e.g. a list file that claims 80 frames
    out = read_video_frames(path, 8, lying)
    assert out.source_frame_count == 50
    assert out.indices.tolist() == sample_indices(50, 8)[0].tolist()
    guessed = dataclasses.replace(info, n_frames=30, frames_counted=False)  # estimated count
    assert read_video_frames(path, 8, guessed).source_frame_count == 50


@cm.needs_ffmpeg
def test_video_frames_from_audio_only_file(tmp_path_factory):
    with pytest.raises(MediaError, match="no video stream"):
        read_video_frames(cm.audio_only(tmp_path_factory), 4)


@cm.needs_ffmpeg
def test_frames_from_path_with_spaces_and_non_ascii(tmp_path_factory, tmp_path):
    path = tmp_path / "Ünïcode clip 表情 01.mp4"
    shutil.copy(cm.av_clip(tmp_path_factory), path)
    assert read_video_frames(path, 4).frames.shape == (4, 48, 64, 3)


# --- frame folders --------------------------------------------------------------------------

def test_natural_sort():
    names = ["10.jpg", "2.jpg", "1.jpg", "img_11.png", "img_9.png", "001.jpg", "0010.jpg"]
    assert natural_sorted(["10.jpg", "2.jpg", "1.jpg"]) == ["1.jpg", "2.jpg", "10.jpg"]
    assert natural_sorted(["img_11.png", "img_9.png"]) == ["img_9.png", "img_11.png"]
    assert natural_sorted(["010.jpg", "002.jpg", "001.jpg"]) == ["001.jpg", "002.jpg", "010.jpg"]
    assert len(natural_sorted(names)) == len(names)


def _write_frames(folder, names):
    folder.mkdir(parents=True)
    for name in names:
        value = int("".join(c for c in name if c.isdigit()))  # pixel value = frame number
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(folder / name)


@pytest.mark.parametrize("pattern", ["{}.png", "{:05d}.png", "frame_{}.png"])
def test_read_frame_folder_natural_order(tmp_path, pattern):
    folder = tmp_path / "clip 01"
    _write_frames(folder, [pattern.format(i) for i in range(1, 13)])  # 1..12, 10 after 9
    out = read_frame_folder(folder, 4)
    assert out.source_frame_count == 12 and out.n_valid == 4
    assert out.indices.tolist() == [1, 4, 7, 10]
    assert out.frames[:, 0, 0, 0].tolist() == [2, 5, 8, 11]


def test_read_frame_folder_reads_only_sampled_files(tmp_path, monkeypatch):
    folder = tmp_path / "clip"
    _write_frames(folder, [f"{i}.png" for i in range(1, 101)])
    opened = []
    real_open = Image.open
    monkeypatch.setattr(frames_mod.Image, "open", lambda p, *a, **k: opened.append(p) or
                        real_open(p, *a, **k))
    read_frame_folder(folder, 8)
    assert len(opened) == 8


def test_read_frame_folder_short_and_bad(tmp_path):
    folder = tmp_path / "short"
    _write_frames(folder, ["1.jpg", "2.jpg", "3.jpg"])
    (folder / "notes.txt").write_text("ignored")
    out = read_frame_folder(folder, 5)
    assert out.n_valid == 3 and out.indices.tolist() == [0, 1, 2, 2, 2]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MediaError, match="no image files"):
        read_frame_folder(empty, 4)
    with pytest.raises(MediaError, match="frame folder not found"):
        read_frame_folder(tmp_path / "missing", 4)
    (folder / "2.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(MediaError, match="unreadable image 2.jpg"):
        read_frame_folder(folder, 5)
