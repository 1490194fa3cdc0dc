"""Face crops for sampled clips with facenet-pytorch's MTCNN, batched across frames and clips.

Detection runs on batches of equal-size frames (MTCNN's ``detect`` needs one size per batch), so
frames of all clips passed to ``FaceCropper.crop`` are grouped by size first. Frames larger than
``detect_max_side`` are shrunk for detection only; boxes are scaled back and crops are cut from the
full-resolution frame.

MTCNN speed on the project's 2-core CPU (64 frames = 4 clips x 16, one face each, frames/s):

==========  ==============  =======  ========  ========
frame size  per frame (1)   batch 4  batch 16  batch 64
==========  ==============  =======  ========  ========
224x224     62-71           89       85        83
640x360     33              37       32        29
==========  ==============  =======  ========  ========

On a CPU batching gains little (the work is convolutions either way); it pays on a GPU, where one
call per frame leaves the device idle. Batched and per-frame boxes were identical in this test.

Per frame the most confident face is kept (MTCNN's probability; with several people in a shot the
subject is usually the clearest face, and "largest" would favour a close bystander). Crops are
squares centred on the box, side ``max(box w, box h) * (1 + margin)``; parts outside the frame are
black. Frames without a face follow the ``fallback``:

* ``"frame"``: centre square of the whole frame (side = the shorter edge), resized.
* ``"neighbour"``: the box of the nearest frame of the same clip that has a face (the earlier
  one on a tie), applied to this frame; clips without any face use ``"frame"``.
* ``"mark"``: the whole frame, padded to a square with black (nothing cut), resized; the caller
  decides what to do with the clip from ``face_ratio``.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

__all__ = ["FaceCrops", "FaceCropper", "scene", "FALLBACKS"]

FALLBACKS = ("frame", "neighbour", "mark")


@dataclass(frozen=True)
class FaceCrops:
    """Face crops of one clip.

    Attributes:
        crops: uint8 [T, crop_size, crop_size, 3], RGB.
        face_found: bool [T], whether a face was detected in each frame.
        boxes: float32 [T, 4], detected box (x1, y1, x2, y2) in frame pixels; NaN without a face.
        probs: float32 [T], detection probability of the kept face; 0 without a face.
        crop_boxes: float32 [T, 4], the square region (x1, y1, x2, y2) each crop was cut from,
            fallbacks included; it may reach outside the frame (that part is black).
        face_ratio: fraction of the T frames with a face, in [0, 1].
        n_faces_max: most faces detected in any one frame of the clip.
    """

    crops: np.ndarray
    face_found: np.ndarray
    boxes: np.ndarray
    probs: np.ndarray
    crop_boxes: np.ndarray
    face_ratio: float
    n_faces_max: int


def _square(img: Image.Image, region: tuple[float, float, float, float], size: int) -> np.ndarray:
    # PIL fills the part of the region outside the image with black.
    return np.asarray(img.crop(tuple(round(v) for v in region)).resize((size, size),
                                                                       Image.BILINEAR))


def _region(cx: float, cy: float, side: float) -> tuple[float, float, float, float]:
    return (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)


def _centre_region(h: int, w: int) -> tuple[float, float, float, float]:
    return _region(w / 2.0, h / 2.0, min(h, w))


def _letterbox_region(h: int, w: int) -> tuple[float, float, float, float]:
    return _region(w / 2.0, h / 2.0, max(h, w))


def scene(frames: np.ndarray, size: int = 112) -> np.ndarray:
    """Low-resolution whole frames for the optional scene stream.

    Args:
        frames: uint8 [T, H, W, 3].
        size: output side in pixels.

    Returns:
        uint8 [T, size, size, 3]: each whole frame padded to a square with black, then resized.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got shape {frames.shape}")
    return np.stack([_square(Image.fromarray(f), _letterbox_region(*f.shape[:2]), size)
                     for f in frames])


class FaceCropper:
    """MTCNN face detector + cropper.

    Args:
        device: torch device for MTCNN ("cpu", "cuda", "cuda:1").
        crop_size: side of the square crops in pixels.
        margin: extra context around the face box, as a fraction of the box's longer side.
        batch_size: frames per MTCNN call (memory grows with batch_size * frame pixels); 4-16
            suits a CPU (module docstring), a GPU wants 64 or more.
        min_face_size: smallest face MTCNN looks for, in pixels of the detection image.
        detect_max_side: frames whose longer side exceeds this are shrunk for detection only
            (speed); None detects at full resolution.
    """

    def __init__(self, device: str = "cpu", crop_size: int = 224, margin: float = 0.25,
                 batch_size: int = 16, min_face_size: int = 20,
                 detect_max_side: int | None = 640) -> None:
        if crop_size < 1 or batch_size < 1:
            raise ValueError(f"crop_size and batch_size must be >= 1, got {crop_size}, "
                             f"{batch_size}")
        if margin < 0:
            raise ValueError(f"margin is a fraction of the face box and must be >= 0, got {margin}")
        from facenet_pytorch import MTCNN  # heavy import, kept out of module import time

        self.crop_size = crop_size
        self.margin = margin
        self.batch_size = batch_size
        self.detect_max_side = detect_max_side
        # keep_all + select_largest=False: all faces, sorted by probability (best first).
        self.mtcnn = MTCNN(keep_all=True, select_largest=False, min_face_size=min_face_size,
                           device=device, post_process=False)
        self.mtcnn.eval()

    def _detect_group(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Detect faces in equal-size frames; per frame (boxes [k, 4], probs [k]), best first."""
        h, w = frames[0].shape[:2]
        scale = 1.0
        if self.detect_max_side is not None and max(h, w) > self.detect_max_side:
            scale = self.detect_max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            frames = [np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames]
            sx, sy = w / size[0], h / size[1]
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(frames), self.batch_size):
            batch = np.stack(frames[start:start + self.batch_size])
            boxes, probs = self.mtcnn.detect(batch)
            for b, p in zip(boxes, probs):
                if b is None:
                    out.append((np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
                    continue
                b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
                if scale != 1.0:
                    b = b * np.array([sx, sy, sx, sy], dtype=np.float32)
                out.append((b, np.asarray(p, dtype=np.float32).reshape(-1)))
        return out

    def detect(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Detect faces in frames of any sizes (grouped by size into batches).

        Args:
            frames: uint8 RGB arrays [H, W, 3].

        Returns:
            per frame (boxes float32 [k, 4] as x1, y1, x2, y2 in frame pixels, probs float32 [k]),
            sorted by probability, best first; k = 0 without a face.
        """
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, f in enumerate(frames):
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                raise ValueError(f"frame {i} must be uint8 [H, W, 3], got {f.dtype} {f.shape}")
            groups[f.shape].append(i)
        results: list = [None] * len(frames)
        for ids in groups.values():
            for i, r in zip(ids, self._detect_group([frames[i] for i in ids])):
                results[i] = r
        return results

    def crop(self, clips: list[np.ndarray], fallback: str = "frame") -> list[FaceCrops]:
        """Detect and crop the face in every frame of every clip, batched across clips.

        Args:
            clips: uint8 arrays [T, H, W, 3] (T and frame size may differ between clips).
            fallback: "frame", "neighbour" or "mark" (module docstring) for frames without a face.

        Returns:
            one FaceCrops per clip, crops uint8 [T, crop_size, crop_size, 3].
        """
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        clips = [np.asarray(clip) for clip in clips]
        # A frame equal to the one before it (short clips padded to T repeat their last frame)
        # is detected once.
        flat: list[np.ndarray] = []
        owner: list[int] = []
        for clip in clips:
            for t, frame in enumerate(clip):
                if t and frame.shape == clip[t - 1].shape and np.array_equal(frame, clip[t - 1]):
                    owner.append(owner[-1])
                else:
                    owner.append(len(flat))
                    flat.append(frame)
        detections = self.detect(flat)
        out, pos = [], 0
        for clip in clips:
            dets = [detections[j] for j in owner[pos:pos + len(clip)]]
            pos += len(clip)
            out.append(self._crop_clip(clip, dets, fallback))
        return out

    def _crop_clip(self, clip: np.ndarray, dets: list, fallback: str) -> FaceCrops:
        T = len(clip)
        found = np.array([len(p) > 0 for _, p in dets], dtype=bool)
        boxes = np.full((T, 4), np.nan, dtype=np.float32)
        probs = np.zeros(T, dtype=np.float32)
        for t, (b, p) in enumerate(dets):
            if len(p):
                best = int(np.argmax(p))
                boxes[t], probs[t] = b[best], p[best]
        with_face = np.flatnonzero(found)
        regions = np.zeros((T, 4), dtype=np.float32)
        crops = []
        for t in range(T):
            box = boxes[t]
            if not found[t] and fallback == "neighbour" and len(with_face):
                # argmin returns the first minimum, i.e. the earlier frame on a tie.
                box = boxes[with_face[np.argmin(np.abs(with_face - t))]]
            h, w = clip[t].shape[:2]
            if np.isnan(box[0]):
                region = _letterbox_region(h, w) if fallback == "mark" else _centre_region(h, w)
            else:
                x1, y1, x2, y2 = (float(v) for v in box)
                side = max(x2 - x1, y2 - y1) * (1.0 + self.margin)
                region = _region((x1 + x2) / 2.0, (y1 + y2) / 2.0, side)
            regions[t] = region
            crops.append(_square(Image.fromarray(clip[t]), region, self.crop_size))
        return FaceCrops(
            crops=np.stack(crops) if crops else np.zeros((0, self.crop_size, self.crop_size, 3),
                                                         np.uint8),
            face_found=found,
            boxes=boxes,
            probs=probs,
            crop_boxes=regions,
            face_ratio=float(found.mean()) if T else 0.0,
            n_faces_max=max((len(p) for _, p in dets), default=0),
        )
