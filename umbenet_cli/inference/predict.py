"""``umbenet predict``: emotion distributions for videos, whatever modalities they have.

    from umbenet_cli.inference.predict import Predictor
    predictor = Predictor.from_checkpoint(find_checkpoint("runs/mafw"), asr_model="base")
    for p in predictor.predict([Path("clip.mp4")]):
        print(p.predicted, p.probabilities, p.present, p.missing)

Videos go through the media steps (``inputs``) a batch at a time, then one forward pass of the
model over the batch with raw inputs (face crops, waveform, transcript) and each video's presence
mask. A video with no usable modality is never given to the model: it gets an error entry instead.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from umbenet_cli.devices import inference_precision
from umbenet_cli.inference.inputs import ClipInputs, MediaReader
from umbenet_cli.inference.locate import PredictError, find_checkpoint, find_videos, run_modalities
from umbenet_cli.model.config import MODALITIES
from umbenet_cli.model.prompt_pool import batch_query_note
from umbenet_cli.model.umbenet import Batch, UMBEnet

log = logging.getLogger(__name__)


@dataclass
class VideoPrediction:
    """The result for one video. ``error`` set = nothing usable (then ``probabilities`` is None)."""

    path: str
    probabilities: dict[str, float] | None  # class name -> softmax probability, the model's class order
    predicted: str | None
    present: dict[str, bool]  # modality -> given to the model
    missing: dict[str, str]  # modality -> why it was not
    transcript: str | None
    language: str | None
    selected_prompts: list[int] | None  # prompt-pool indices the clip selected (None: no pool)
    face_ratio: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def top(self, n: int) -> list[tuple[str, float]]:
        """The n most probable classes, most probable first."""
        items = sorted((self.probabilities or {}).items(), key=lambda kv: -kv[1])
        return items[:n]

    def to_dict(self) -> dict:
        return {"path": self.path, "status": "ok" if self.ok else "error", "error": self.error,
                "predicted": self.predicted, "probabilities": self.probabilities,
                "present": self.present, "missing_reasons": self.missing,
                "transcript": self.transcript, "language": self.language,
                "selected_prompts": self.selected_prompts, "face_ratio": self.face_ratio, "notes": self.notes}


class Predictor:
    """A trained UMBEnet plus the media steps that turn videos into its inputs.

    Args:
        model: the trained model (``UMBEnet.load(checkpoint)``).
        reader: the media steps (``MediaReader``) matching the model's T and audio length.
        modalities: the modalities the model was trained on; others are withheld from it.
        batch_clips: videos per media batch and per forward pass.
    """

    def __init__(self, model: UMBEnet, reader: MediaReader, modalities: tuple[str, ...] = MODALITIES,
                 device: str = "cpu", batch_clips: int = 8) -> None:
        self.model = model.to(device).eval()
        self.reader = reader
        self.modalities = modalities
        self.device = device
        self.batch_clips = batch_clips

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, asr_model: str | None = "base", language: str | None = None,
                        device: str = "cpu", batch_clips: int = 8, workers: int = 2,
                        asr_backend: str | None = None) -> "Predictor":
        """Load the model of a checkpoint folder and the speech recogniser (``asr_model`` None: none)."""
        from pipelines.asr import load_asr

        asr = None
        if asr_model:  # fails early: offline, a broken model, a language the model cannot do
            asr = load_asr(asr_model, asr_backend, device=device)
            asr.check_language(language)
        model = UMBEnet.load(checkpoint, map_location=device)
        cfg = model.config
        reader = MediaReader(cfg.num_frames, cfg.audio.sample_rate, model.audio.num_samples, device=device,
                             asr=asr, language=language, scene=cfg.temporal.scene_stream, workers=workers)
        return cls(model, reader, run_modalities(Path(checkpoint)), device, batch_clips)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.model.config.classes

    @property
    def batch_note(self) -> str | None:
        """Set when a prediction depends on the other videos of its batch (``pool.query_scope=batch``)."""
        return batch_query_note(self.model.config.pool, f"here up to {self.batch_clips} videos at a time "
                                f"(--batch-clips), in the order given; videos that fail to read are left out")

    def predict(self, videos: list[Path], advance: Callable[[int], None] | None = None) -> list[VideoPrediction]:
        """One VideoPrediction per video, in order; ``advance(n)`` is called as batches finish."""
        out: list[VideoPrediction] = []
        for s in range(0, len(videos), self.batch_clips):
            chunk = videos[s:s + self.batch_clips]
            out += self.predict_inputs(self.reader.read(list(chunk)))
            if advance is not None:
                advance(len(chunk))
        return out

    def predict_inputs(self, clips: list[ClipInputs]) -> list[VideoPrediction]:
        """Predict clips already read; those without a usable modality get an error entry."""
        for clip in clips:
            for m in MODALITIES:
                if m not in self.modalities and clip.present[m]:
                    clip.missing[m] = f"not used: this model was trained on {','.join(self.modalities)} only"
        usable = [c for c in clips if c.error is None and any(c.present.values())]
        results: dict[int, tuple[np.ndarray, list[int] | None]] = {}
        if usable:
            probs, selected = self.forward(usable)
            for i, c in enumerate(usable):
                results[id(c)] = (probs[i], None if selected is None else [int(x) for x in selected[i]])
        return [self._prediction(c, results.get(id(c))) for c in clips]

    @torch.no_grad()
    def forward(self, clips: list[ClipInputs]) -> tuple[np.ndarray, np.ndarray | None]:
        """One forward pass -> (probabilities [B, C], selected prompt indices [B, k] or None)."""
        batch = self.batch(clips)
        if not bool(batch.present.any(dim=1).all()):  # the caller filters these; a clip without
            raise RuntimeError("a clip with no modality reached the model")  # modality is a bug here
        with inference_precision(torch.device(self.device)):  # float32, as validation and eval
            out = self.model(batch.to(self.device))
        probs = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
        return probs, (out.selected.cpu().numpy() if out.selected is not None else None)

    def batch(self, clips: list[ClipInputs]) -> Batch:
        """Raw-input Batch: frames [B, T, 3, S, S], frame_mask [B, T], audio [B, S_a], audio_len [B],
        text (B strings), present [B, 3]; missing modalities hold zeros / "" and are masked off."""
        model, B = self.model, len(clips)
        T, S_a, s = model.config.num_frames, model.audio.num_samples, model.backbone.dims.image_size
        present = torch.tensor([[c.present[m] for m in MODALITIES] for c in clips], dtype=torch.bool)
        frames = torch.zeros(B, T, 3, s, s)
        frame_mask = torch.zeros(B, T, dtype=torch.bool)
        audio = torch.zeros(B, S_a)
        audio_len = torch.full((B,), S_a, dtype=torch.long)  # as in training: missing audio counts as full length
        scene_emb = None
        if model.config.temporal.scene_stream:
            scene_emb = torch.zeros(B, T, model.backbone.dims.embed_dim)
        for i, c in enumerate(clips):
            if c.present["video"]:
                frames[i] = model.backbone.preprocess(c.crops)
                frame_mask[i, :c.n_valid] = True
                if scene_emb is not None and c.scene is not None:
                    pixels = model.backbone.preprocess(c.scene).to(self.device)
                    scene_emb[i] = model.backbone.encode_images(pixels).float().cpu()
            if c.present["audio"]:
                n = min(len(c.audio), S_a)
                audio[i, :n] = torch.from_numpy(c.audio[:n])
                audio_len[i] = n
        text = [c.text if c.present["text"] else "" for c in clips]
        return Batch(present=present, frames=frames, frame_mask=frame_mask, scene_emb=scene_emb,
                     audio=audio, audio_len=audio_len, text=text)

    def _prediction(self, c: ClipInputs, result: tuple[np.ndarray, list[int] | None] | None) -> VideoPrediction:
        error = c.error
        if error is None and result is None:
            error = "no usable modality: " + "; ".join(f"{m}: {c.missing.get(m, '?')}" for m in MODALITIES)
        probabilities = predicted = selected = None
        if result is not None:
            p, selected = result
            probabilities = {name: float(v) for name, v in zip(self.classes, p)}
            predicted = self.classes[int(np.argmax(p))]
        present = c.present if result is not None else {m: False for m in MODALITIES}
        return VideoPrediction(path=str(c.path), probabilities=probabilities, predicted=predicted,
                               present=present, missing=dict(c.missing), transcript=c.text,
                               language=c.language, selected_prompts=selected, face_ratio=c.face_ratio,
                               notes=list(c.notes), error=error)


# ------------------------------------------------------------------------------ the command
@dataclass(frozen=True)
class PredictOptions:
    """What one ``umbenet predict`` is asked to do; checked before any heavy work."""

    inputs: Path
    run: Path | None = None
    checkpoint: str = "best"
    fold: int | None = None
    runs_dir: Path = Path("runs")
    asr_model: str | None = "base"  # None: no speech recognition
    language: str | None = None
    device: str = "cpu"
    asr_backend: str | None = None  # None: follow the model (pipelines.asr.backend_for)
    json_path: Path | None = None
    top: int = 3
    batch_clips: int = 8

    def __post_init__(self) -> None:
        problems = []
        if self.top < 1:
            problems.append(f"--top {self.top}: show at least 1 class")
        if self.batch_clips < 1:
            problems.append(f"--batch-clips {self.batch_clips}: must be at least 1")
        from umbenet_cli.devices import DeviceError, resolve_device

        try:
            object.__setattr__(self, "device", str(resolve_device(self.device)))
        except DeviceError as exc:
            problems.append(str(exc))
        from pipelines.asr import check_backend, language_problem

        problems += [p for p in (check_backend(self.asr_backend), language_problem(self.language)) if p]
        if self.json_path is not None and self.json_path.is_dir():
            problems.append(f"--json {self.json_path}: is a folder; give a file path such as predictions.json")
        if problems:
            raise PredictError("cannot predict:\n  - " + "\n  - ".join(problems))

    @property
    def language_code(self) -> str | None:
        from pipelines.asr import language_code

        return language_code(self.language)


def run_predict(opts: PredictOptions, console: Console, out: Console | None = None) -> list[VideoPrediction]:
    """Predict every video of ``opts.inputs``, print the tables to ``out`` (stdout), write --json.

    Raises PredictError (exit code 2) when no video could be predicted; its message gives each
    video's reason (then no table is printed, so each reason shows once).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from umbenet_cli.inference.report import print_predictions, write_json

    videos = find_videos(opts.inputs)
    checkpoint = find_checkpoint(opts.run, opts.checkpoint, opts.fold, opts.runs_dir)
    console.print(f"model: {checkpoint}", highlight=False)
    from pipelines.asr import ASRError

    try:
        predictor = Predictor.from_checkpoint(checkpoint, opts.asr_model, opts.language_code, opts.device,
                                              opts.batch_clips, asr_backend=opts.asr_backend)
    except ASRError as exc:
        raise PredictError(f"{exc}\nFor `umbenet predict`: pass a local model with --asr-model PATH (a .pt file "
                           f"for --asr-backend whisper, a CTranslate2 folder for faster-whisper), or --no-asr "
                           f"to predict without transcripts (text missing).") from exc
    if predictor.batch_note:
        console.print(f"[yellow]note: {predictor.batch_note}[/]", highlight=False)
    with Progress(TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=len(videos) < 2) as progress:
        task = progress.add_task("videos", total=len(videos))
        predictions = predictor.predict(videos, advance=lambda n: progress.advance(task, n))
    failed = [p for p in predictions if not p.ok]
    if len(failed) < len(predictions):  # when none went through, the error below says why, once
        pool = predictor.model.config.pool
        print_predictions(predictions, predictor.classes, opts.top, out or Console(), folder=Path(opts.inputs).is_dir(),
                          pool_size=pool.size if pool.enabled else None)
    if opts.json_path is not None:
        write_json(opts.json_path, predictions, predictor.classes, checkpoint, opts, note=predictor.batch_note)
        console.print(f"wrote {opts.json_path}", highlight=False)
    if len(failed) == len(predictions):
        raise PredictError("no video could be predicted:\n" + "\n".join(f"  - {p.path}: {p.error}" for p in failed))
    return predictions  # the caller says how many failed (the command: one line and exit code 1)
