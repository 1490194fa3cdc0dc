"""Stages 1-4 of prep: decode, face crop, audio, text -> rows of the cache's media table.

Clips stream through: worker threads decode a bounded window ahead, faces are detected in batches
across clips, ASR runs in batches, and finished rows go to the part writer as they come. Memory
therefore depends on the batch sizes, not on the number of clips.
"""
from __future__ import annotations

import io
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from PIL import Image

from pipelines.clip_decode import DecodedClip, decode_clip
from pipelines.prep_options import PrepOptions
from pipelines.sources import ClipRecord

log = logging.getLogger(__name__)
JPEG_QUALITY = 90
SCENE_SIZE = 112


def jpeg(img: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> JPEG bytes (deterministic for the same input and Pillow)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def decode_ahead(records: list[ClipRecord], opts: PrepOptions) -> Iterator[DecodedClip]:
    """Decode clips in worker threads, at most a few batches ahead, yielding in input order."""
    S = int(round(opts.audio_seconds * opts.sample_rate))
    window = max(opts.workers * 2, opts.batch_clips)
    with ThreadPoolExecutor(opts.workers, thread_name_prefix="decode") as pool:
        pending = []
        it = iter(records)
        for rec in it:
            pending.append(pool.submit(decode_clip, rec, opts.num_frames, opts.sample_rate, S))
            if len(pending) >= window:
                break
        while pending:
            done = pending.pop(0).result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(decode_clip, nxt, opts.num_frames, opts.sample_rate, S))
            yield done


def media_threads(opts: PrepOptions) -> int | None:
    """torch intra-op threads for the media stage, or None to leave torch's setting alone.

    On a CPU, face detection shares the cores with ``opts.workers`` ffmpeg decode threads; torch's
    default (one OpenMP thread per core) then makes every small MTCNN op wait for a thread that is
    not scheduled: 6-10x slower at 2 threads than at 1 on the 2-CPU benchmark machine
    (benchmarks/perf, finding 2). So detection gets the cores the workers leave, at least one.
    An explicit choice wins: ``opts.torch_threads`` (set for the whole run by ``run_prep``),
    OMP_NUM_THREADS / MKL_NUM_THREADS, or a lower ``torch.set_num_threads`` made before prep.
    """
    if opts.torch_threads is not None or opts.device != "cpu":
        return None
    if any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return None
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(torch.get_num_threads(), max(1, cpus - opts.workers))


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block, the previous value restored after it."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def batched(items: Iterable, n: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


class MediaStage:
    """Turns clip records into media rows. ``run`` calls ``write(row)`` per finished clip."""

    def __init__(self, opts: PrepOptions, dataset: str, expect_text: bool) -> None:
        """expect_text: whether the dataset has text at all (decided on the whole dataset, not on
        one shard, so that every shard words its rows the same way)."""
        self.opts = opts
        self.dataset = dataset
        self.expect_text = expect_text
        self.seconds: Counter[str] = Counter()
        self._cropper = None
        self._asr = None

    def cropper(self):
        if self._cropper is None:
            from pipelines.media import FaceCropper

            self._cropper = FaceCropper(device=self.opts.device, batch_size=64)
        return self._cropper

    def asr(self):
        if self._asr is None:
            from pipelines.asr import load_asr

            t0 = time.perf_counter()
            self._asr = load_asr(self.opts.asr_model, self.opts.asr_backend, device=self.opts.device)
            self._asr.check_language(self.opts.language)
            self.seconds["asr load"] += time.perf_counter() - t0
        return self._asr

    def run(self, records: list[ClipRecord], write: Callable[[dict], None],
            advance: Callable[[int], None]) -> None:
        for batch in batched(decode_ahead(records, self.opts), self.opts.batch_clips):
            for clip in batch:
                for k, v in clip.seconds.items():
                    self.seconds[k] += v
            crops = self._faces(batch)
            texts = self._texts(batch)
            t0 = time.perf_counter()
            for clip in batch:
                write(self._row(clip, crops.get(id(clip)), texts[id(clip)], self.expect_text))
            self.seconds["write"] += time.perf_counter() - t0
            advance(len(batch))

    # --------------------------------------------------------------------------- stages
    def _faces(self, batch: list[DecodedClip]) -> dict[int, tuple]:
        """Face crops (JPEG lists) per clip id(): (crops, scene, face_ratio, note)."""
        t0 = time.perf_counter()
        out: dict[int, tuple] = {}
        size = 224
        detect = [c for c in batch if c.frames is not None and c.record.media_kind == "video"]
        if detect:
            for clip, fc in zip(detect, self.cropper().crop([c.frames for c in detect], self.opts.face_fallback)):
                note = None
                if fc.face_ratio < 1.0:
                    note = f"face found in {fc.face_found.sum()}/{len(fc.face_found)} frames (fallback {self.opts.face_fallback})"
                if fc.n_faces_max > 1:
                    note = (note + "; " if note else "") + f"up to {fc.n_faces_max} faces, most confident kept"
                out[id(clip)] = ([jpeg(c) for c in fc.crops], fc.face_ratio, note)
        for clip in batch:  # pre-cropped frame folders: detection skipped
            if clip.frames is not None and clip.record.media_kind == "frames":
                resized = [np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in clip.frames]
                out[id(clip)] = ([jpeg(c) for c in resized], 1.0, "pre-cropped frames: face detection skipped")
        self.seconds["faces"] += time.perf_counter() - t0
        if self.opts.scene:
            from pipelines.media import scene

            t0 = time.perf_counter()
            for clip in batch:
                if id(clip) in out:
                    out[id(clip)] += ([jpeg(s) for s in scene(clip.frames, SCENE_SIZE)],)
            self.seconds["scene"] += time.perf_counter() - t0
        return out

    def _texts(self, batch: list[DecodedClip]) -> dict[int, tuple[str | None, str, str | None, str | None]]:
        """(text, source, language, missing_reason) per clip id()."""
        t0 = time.perf_counter()
        out: dict[int, tuple] = {}
        need_asr = []
        for clip in batch:
            rec = clip.record
            if rec.text_source == "annotation":
                out[id(clip)] = (rec.text, "annotation", "en" if self.dataset == "mafw" else None, None)
            elif rec.text_source == "asr":
                if clip.audio is None:
                    out[id(clip)] = (None, "none", None, f"no audio to transcribe ({clip.audio_reason})")
                else:
                    need_asr.append(clip)
            else:
                reason = ("no caption (MAFW's neutral clips have none)" if self.dataset == "mafw"
                          else "no text for this clip in the annotations")
                out[id(clip)] = (None, "none", None, reason)
        if need_asr:
            from pipelines.asr import to_16k

            results = self.asr().transcribe([to_16k(c.speech, self.opts.sample_rate) for c in need_asr],
                                            language=self.opts.language, batch_size=self.opts.batch_clips)
            for clip, r in zip(need_asr, results):
                clip.speech = None  # transcribed: the uncut audio is not kept
                out[id(clip)] = (r.text, "asr" if r.text else "none", r.language, r.missing_reason)
        self.seconds["text"] += time.perf_counter() - t0
        return out

    def _row(self, clip: DecodedClip, faces: tuple | None, text: tuple, expect_text: bool) -> dict:
        rec = clip.record
        reasons = []
        crops = scene = None
        face_ratio = 0.0
        if faces is not None:
            crops, face_ratio, note = faces[0], faces[1], faces[2]
            scene = faces[3] if len(faces) > 3 else None
            if note:
                clip.notes.append(note)
            if self.opts.face_fallback == "mark" and face_ratio == 0.0:
                crops = scene = None
                clip.video_reason = "no face in any sampled frame (--face-fallback mark)"
        if clip.fatal is None and crops is None:
            reasons.append(f"video: {clip.video_reason or 'not decodable'}")
        if clip.fatal is None and clip.audio is None and rec.media_kind == "video":
            reasons.append(f"audio: {clip.audio_reason}")
        txt, source, lang, text_reason = text
        if clip.fatal is None and txt is None and expect_text:
            reasons.append(f"text: {text_reason}")
        if clip.fatal is not None:
            # A failed clip takes part in nothing: its annotated text (e.g. a MAFW caption of a
            # 0-byte video) is not kept either, so no modality subset can score it.
            status, reasons = "failed", [clip.fatal]
            crops = scene = None
            clip.audio = None
            if txt is not None:
                txt, source, lang, text_reason = None, "none", None, f"clip failed ({clip.fatal})"
        elif crops is None and clip.audio is None and txt is None:
            status = "failed"
            reasons.append("no usable modality")
        else:
            status = "partial" if reasons else "ok"
        row = {
            "clip_id": rec.clip_id, "label": rec.label, "fold": rec.fold, "split": rec.split,
            "status": status, "status_reason": "; ".join(reasons + clip.notes),
            "n_source_frames": clip.n_source_frames, "n_valid_frames": clip.n_valid if crops is not None else 0,
            "face_ratio": float(face_ratio), "crops": crops,
            "audio": clip.audio, "audio_missing_reason": None if clip.audio is not None else (clip.audio_reason or "no audio"),
            "text": txt, "text_source": source, "text_language": lang,
            "text_missing_reason": None if txt is not None else (text_reason or "no text"),
        }
        if self.opts.scene:
            row["scene"] = scene
        return row
