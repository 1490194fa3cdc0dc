"""Videos -> raw model inputs, built exactly as ``umbenet prep`` builds a training clip.

Per video: T frames sampled with prep's rule, MTCNN face crops (frames without a face use the
centre of the frame, prep's default fallback), stored and re-read as JPEG at prep's quality (the
model was trained on such crops), the 16 kHz audio cut to the model's length, and a Whisper
transcript of that audio. A modality that is not there is *missing*, with a reason; nothing is
invented in its place:

    video  missing when the file has no video stream, or no face is found in any sampled frame
    audio  missing when the file has no audio stream (or it decodes to nothing)
    text   missing when there is no audio, ASR is off, or Whisper returns no speech
"""
from __future__ import annotations

import io
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from umbenet_cli.model.config import MODALITIES

log = logging.getLogger(__name__)

FACE_FALLBACK = "frame"  # prep's default: a clip is judged on its face frames, the rest centre-cropped
SCENE_SIZE = 112  # prep's scene-stream frame side


@dataclass
class ClipInputs:
    """One video as model inputs. A modality is missing when its field is None (``missing`` says why).

    crops: uint8 [T, 224, 224, 3] face crops; scene: uint8 [T, 112, 112, 3] whole frames (only
    for models with a scene stream); audio: float32 [n] at the model's sample rate, n <= S_a.
    """

    path: Path
    crops: np.ndarray | None = None
    scene: np.ndarray | None = None
    n_valid: int = 0
    face_ratio: float = 0.0
    audio: np.ndarray | None = None
    speech: np.ndarray | None = None  # the whole audio, uncut, for ASR (dropped once transcribed)
    text: str | None = None
    language: str | None = None
    missing: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # the file cannot be used at all
    notes: list[str] = field(default_factory=list)

    @property
    def present(self) -> dict[str, bool]:
        have = {"video": self.crops is not None, "audio": self.audio is not None, "text": self.text is not None}
        return {m: have[m] and m not in self.missing for m in MODALITIES}


def as_cached(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] -> the same images after the cache's JPEG round trip (prep's quality)."""
    from pipelines.media_stage import jpeg

    return np.stack([np.asarray(Image.open(io.BytesIO(jpeg(img))).convert("RGB")) for img in images])


class MediaReader:
    """Decodes videos, crops faces and transcribes speech, a batch of videos at a time.

    Args:
        num_frames: T, frames sampled per video (the model's ``num_frames``).
        sample_rate, max_samples: audio rate in Hz and the model's input length S_a in samples.
        asr: a speech recogniser (``pipelines.asr.load_asr``, either backend), or None for no text.
        language: Whisper language code; None detects it per video.
        scene: also keep whole frames, for models with a scene stream.
    """

    def __init__(self, num_frames: int, sample_rate: int, max_samples: int, device: str = "cpu",
                 asr=None, language: str | None = None, scene: bool = False, workers: int = 2) -> None:
        self.num_frames = num_frames
        self.sample_rate = sample_rate
        self.max_samples = max_samples
        self.device = device
        self.asr = asr
        self.language = language
        self.scene = scene
        self.workers = workers
        self._cropper = None

    def cropper(self):
        if self._cropper is None:
            from pipelines.media import FaceCropper

            self._cropper = FaceCropper(device=self.device, batch_size=64 if self.device != "cpu" else 16)
        return self._cropper

    def read(self, paths: list[Path]) -> list[ClipInputs]:
        """One ClipInputs per path, in order. Never raises for a bad video: it gets ``error``."""
        from pipelines.clip_decode import decode_clip
        from pipelines.sources import ClipRecord

        records = [ClipRecord(clip_id=p.stem, media_path=p, media_kind="video", label=0, text=None,
                              text_source="asr" if self.asr is not None else "none", fold=None, split=None)
                   for p in paths]
        with ThreadPoolExecutor(max(1, min(self.workers, len(records)))) as pool:
            decoded = list(pool.map(lambda r: decode_clip(r, self.num_frames, self.sample_rate, self.max_samples),
                                    records))
        clips = [self._from_decoded(d) for d in decoded]
        self._faces(clips, decoded)
        self._texts(clips)
        return clips

    def _from_decoded(self, d) -> ClipInputs:
        clip = ClipInputs(path=Path(d.record.media_path), notes=list(d.notes))
        if d.fatal is not None:
            clip.error = d.fatal
            clip.missing = {m: d.fatal for m in MODALITIES}
            return clip
        if d.frames is None:
            clip.missing["video"] = d.video_reason or "video not decodable"
        if d.audio is not None:
            clip.audio = d.audio
            clip.speech = d.speech
        else:
            clip.missing["audio"] = d.audio_reason or "no audio"
        return clip

    def _faces(self, clips: list[ClipInputs], decoded: list) -> None:
        todo = [(c, d) for c, d in zip(clips, decoded) if c.error is None and d.frames is not None]
        if not todo:
            return
        found = self.cropper().crop([d.frames for _, d in todo], FACE_FALLBACK)
        for (clip, d), fc in zip(todo, found):
            clip.face_ratio = float(fc.face_ratio)
            if fc.face_ratio == 0.0:
                clip.missing["video"] = f"no face found in any of the {len(fc.face_found)} sampled frames"
                continue
            if fc.face_ratio < 1.0:
                clip.notes.append(f"face found in {int(fc.face_found.sum())}/{len(fc.face_found)} frames "
                                  f"(the others centre-cropped)")
            if fc.n_faces_max > 1:
                clip.notes.append(f"up to {fc.n_faces_max} faces in a frame; the most confident kept")
            clip.crops = as_cached(fc.crops)
            clip.n_valid = int(d.n_valid)
            if self.scene:
                from pipelines.media import scene

                clip.scene = as_cached(scene(d.frames, SCENE_SIZE))

    def _texts(self, clips: list[ClipInputs]) -> None:
        need = []
        for clip in clips:
            if clip.error is not None:
                continue
            if clip.audio is None:
                clip.missing["text"] = f"no audio to transcribe ({clip.missing.get('audio', 'no audio')})"
            elif self.asr is None:
                clip.missing["text"] = "speech recognition off (--no-asr)"
            else:
                need.append(clip)
        if not need:
            return
        from pipelines.asr import to_16k

        # One window per decode: batched decoding changes the logits in the last bits, enough to
        # flip a near tie (language detection, a token), and a video's transcript, hence its
        # prediction, must not depend on which other videos share its batch.
        speech = [to_16k(c.speech if c.speech is not None else c.audio, self.sample_rate) for c in need]
        for clip, r in zip(need, self.asr.transcribe(speech, language=self.language, batch_size=1)):
            clip.speech = None
            clip.language = r.language
            if r.text:
                clip.text = r.text
            else:
                clip.missing["text"] = r.missing_reason or "asr: empty transcript"
