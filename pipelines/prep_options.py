"""What one ``umbenet prep`` run is asked to do, checked before any heavy work."""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

from umbenet_cli.data.cache_parts import parse_shard
from umbenet_cli.data.cache_schema import CacheError
from umbenet_cli.errors import UserError
from umbenet_cli.model.config import UMBEnetConfig

FACE_FALLBACKS = ("frame", "neighbour", "mark")
SAMPLING_RULE = ("T equal segments, the centre frame of each; clips shorter than T: every frame, "
                 "then the last frame repeated (n_valid_frames = real frames)")


class PrepError(UserError, ValueError):
    """A prep request that cannot run; the message names the option and the fix."""


@dataclass(frozen=True)
class PrepOptions:
    """Options of one prep run. ``model`` fixes T, the audio length and the backbone, so that the
    cache fits the model that will train on it."""

    source: str
    root: Path
    out: Path
    model: UMBEnetConfig
    source_options: dict = field(default_factory=dict)  # e.g. {"text": "asr"} for MAFW
    asr_model: str = "base"  # Whisper name, local .pt (whisper) or CTranslate2 folder (faster-whisper)
    asr_backend: str | None = None  # pipelines.asr.BACKENDS; None: follow the model (asr.backend_for)
    language: str | None = None  # Whisper language; None = detect per clip
    face_fallback: str = "frame"
    scene: bool = False
    device: str = "cpu"
    workers: int = 2
    # torch intra-op threads for the whole run (media and embed). None: on a CPU the media stage
    # gives face detection (and ASR) max(1, usable CPUs - workers) threads, never more than torch
    # has when prep starts, and puts the previous value back afterwards; OMP_NUM_THREADS or
    # MKL_NUM_THREADS in the environment, or a lower torch.set_num_threads made before, win.
    # Measured (benchmarks/perf, finding 2): with the CPUs shared by the ffmpeg decode workers,
    # MTCNN at 2 threads on 2 CPUs was 6-10x slower than at 1.
    torch_threads: int | None = None
    batch_clips: int = 16  # clips per face-detection / ASR batch
    embed_batch: int = 256  # frames per CLIP image-tower batch
    shard: tuple[int, int] = (0, 1)
    force: bool = False
    on_problem: str = "stop"
    stages: tuple[str, ...] = ("media", "embed")

    def __post_init__(self) -> None:
        problems = []
        if self.face_fallback not in FACE_FALLBACKS:
            problems.append(f"--face-fallback {self.face_fallback!r}: choose one of {list(FACE_FALLBACKS)}")
        if self.workers < 1:
            problems.append(f"--workers {self.workers}: must be at least 1")
        if self.torch_threads is not None and self.torch_threads < 1:
            problems.append(f"--torch-threads {self.torch_threads}: must be at least 1 (or left out: automatic)")
        if self.batch_clips < 1 or self.embed_batch < 1:
            problems.append("--batch-clips and --embed-batch must be at least 1")
        if self.on_problem not in ("stop", "skip"):
            problems.append(f"--on-problem {self.on_problem!r}: choose 'stop' or 'skip'")
        from umbenet_cli.devices import DeviceError, resolve_device

        try:  # "cuda" becomes "cuda:0": face detection, ASR and CLIP all get an index
            object.__setattr__(self, "device", str(resolve_device(self.device)))
        except DeviceError as exc:
            problems.append(str(exc))
        from pipelines.asr import check_backend, language_problem

        problems += [p for p in (check_backend(self.asr_backend), language_problem(self.language)) if p]
        unknown = [s for s in self.stages if s not in ("media", "embed")]
        if unknown or not self.stages:
            problems.append(f"stages {list(self.stages)}: choose among 'media' and 'embed'")
        if problems:
            raise PrepError("cannot run prep:\n  - " + "\n  - ".join(problems))

    @property
    def num_frames(self) -> int:
        return self.model.num_frames

    @property
    def audio_seconds(self) -> float:
        return self.model.audio.seconds

    @property
    def sample_rate(self) -> int:
        return self.model.audio.sample_rate

    @property
    def shard_name(self) -> str:
        return f"{self.shard[0]}-of-{self.shard[1]}"


def parse_shard_option(text: str) -> tuple[int, int]:
    """``--shard i/n`` (0-based i) -> (i, n), with a clear error."""
    try:
        return parse_shard(text)
    except (CacheError, ValueError) as exc:
        raise PrepError(f"--shard {text!r}: {exc}; write it as i/n with 0 <= i < n, e.g. 0/4") from None


def in_shard(clip_id: str, shard: tuple[int, int]) -> bool:
    """Stable assignment of a clip to one of n shards (the same on every machine and run)."""
    i, n = shard
    return zlib.crc32(clip_id.encode("utf-8")) % n == i
