"""FaceCropper: MTCNN batched across frames and clips, best face per frame, and the fallbacks."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.media import FaceCropper, scene

try:
    from . import conftest_media as cm
except ImportError:
    import conftest_media as cm

pytest.importorskip("facenet_pytorch")


@pytest.fixture(scope="module")
def cropper() -> FaceCropper:
    return FaceCropper(device="cpu", crop_size=64, batch_size=8)


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return cm.astronaut(160)  # one real face, about 30 px wide


def test_real_face_found(cropper, face):
    (res,) = cropper.crop([face[None]])
    assert res.face_found.tolist() == [True] and res.face_ratio == 1.0
    assert res.crops.shape == (1, 64, 64, 3) and res.crops.dtype == np.uint8
    x1, y1, x2, y2 = res.boxes[0]
    # The astronaut's face sits in the upper middle of the picture.
    assert 40 < (x1 + x2) / 2 < 100 and 10 < (y1 + y2) / 2 < 60
    assert res.probs[0] > 0.9 and res.n_faces_max == 1
    # The crop is a square around the face box, margin included.
    cx1, cy1, cx2, cy2 = res.crop_boxes[0]
    assert cx2 - cx1 == pytest.approx(max(x2 - x1, y2 - y1) * 1.25, rel=1e-4)
    assert cx1 <= x1 and cy1 <= y1 and cx2 >= x2 and cy2 >= y2


def test_several_faces_keeps_the_most_confident(cropper, face):
    # Two people side by side: the right one darker, so its detection is less sure.
    right = (face[:, ::-1].astype(np.float32) * 0.45).astype(np.uint8)
    two = np.concatenate([face, right], axis=1)
    (boxes, probs), = cropper.detect([two])
    assert len(probs) == 2
    (res,) = cropper.crop([two[None]])
    assert res.n_faces_max == 2 and res.face_found[0]
    best = int(np.argmax(probs))
    assert np.allclose(res.boxes[0], boxes[best]) and res.probs[0] == probs.max()


def test_no_face_fallbacks(cropper):
    clip = np.stack([cm.gradient(96, 128)] * 3)
    frame, neighbour, mark = (cropper.crop([clip], fallback=f)[0] for f in
                              ("frame", "neighbour", "mark"))
    for res in (frame, neighbour, mark):
        assert res.face_ratio == 0.0 and not res.face_found.any() and res.n_faces_max == 0
        assert np.isnan(res.boxes).all() and res.crops.shape == (3, 64, 64, 3)
    # "frame": the centre 96x96 square; "neighbour" without any face in the clip does the same.
    assert np.allclose(frame.crop_boxes[0], [16, 0, 112, 96])
    assert np.array_equal(neighbour.crops, frame.crops)
    # "mark": the whole 128x96 frame padded to a square (black bands top and bottom).
    assert np.allclose(mark.crop_boxes[0], [0, -16, 128, 112])
    assert mark.crops[:, :4].max() == 0 and mark.crops[:, 32].min() > 0


def test_neighbour_fallback_uses_nearest_face_box(cropper, face):
    blank = np.full_like(face, 120)
    shifted = np.roll(face, 20, axis=1)
    clip = np.stack([face, blank, blank, blank, shifted])
    res = cropper.crop([clip], fallback="neighbour")[0]
    assert res.face_found.tolist() == [True, False, False, False, True]
    assert res.face_ratio == pytest.approx(0.4)
    assert np.allclose(res.crop_boxes[1], res.crop_boxes[0])
    assert np.allclose(res.crop_boxes[2], res.crop_boxes[0])  # tie: the earlier frame
    assert np.allclose(res.crop_boxes[3], res.crop_boxes[4])


def test_batched_equals_per_frame(cropper, face):
    frames = [face, face[:, ::-1], np.roll(face, 15, axis=0), np.roll(face, -25, axis=1),
              (face * 0.7).astype(np.uint8), cm.gradient(160, 160)]
    batched = cropper.crop([np.stack(frames[:4]), np.stack(frames[4:])])
    single = [cropper.crop([f[None]])[0] for f in frames]
    found = np.concatenate([r.face_found for r in batched])
    assert found.tolist() == [r.face_found[0] for r in single] == [True] * 5 + [False]
    boxes = np.concatenate([r.boxes for r in batched])
    assert np.allclose(boxes[:5], np.stack([r.boxes[0] for r in single[:5]]), atol=1.0)


def test_clips_of_different_sizes_in_one_call(cropper, face):
    big = np.stack([cm.astronaut(200)] * 2)
    small = np.stack([face] * 3)
    out = cropper.crop([big, small])
    assert [r.crops.shape for r in out] == [(2, 64, 64, 3), (3, 64, 64, 3)]
    assert all(r.face_ratio == 1.0 for r in out)


def test_large_frames_are_shrunk_for_detection_only(face):
    small_detector = FaceCropper(crop_size=32, detect_max_side=100)
    (res,) = small_detector.crop([face[None]])
    (ref,) = FaceCropper(crop_size=32, detect_max_side=None).crop([face[None]])
    assert res.face_found[0] and ref.face_found[0]
    assert np.allclose(res.boxes[0], ref.boxes[0], atol=8)  # in full-resolution pixels


def test_bad_arguments(cropper):
    with pytest.raises(ValueError, match="fallback must be one of"):
        cropper.crop([np.zeros((1, 32, 32, 3), np.uint8)], fallback="skip")
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        cropper.crop([np.zeros((1, 32, 32), np.uint8)])


def test_scene_frames(face):
    frames = np.stack([cm.gradient(96, 128), cm.gradient(96, 128)])
    out = scene(frames, size=32)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
    assert out[:, 0].max() == 0  # letterboxed: the whole frame is kept, bands are black


def test_repeated_padding_frames_are_detected_once(cropper, face, monkeypatch):
    seen = []
    real = cropper.detect
    monkeypatch.setattr(cropper, "detect", lambda frames: seen.append(len(frames)) or real(frames))
    clip = np.stack([face, face[:, ::-1], face[:, ::-1], face[:, ::-1]])  # 2 real + 2 padding
    (res,) = cropper.crop([clip])
    assert seen == [2]
    assert res.face_found.all() and np.allclose(res.boxes[3], res.boxes[1])
