"""Speech-to-text for clips without annotated text: openai-whisper, batched across clips.

The model is a name Whisper knows (``tiny``, ``base``, ``small``, ...) or a local ``.pt``
checkpoint. Whisper downloads named models on first use; offline, that fails deep inside urllib,
so loading is wrapped in an error that names the model and the fix.

A clip's transcript is missing (never a filler string) when it is empty after stripping, or when
Whisper itself judges the audio to be silence (its own rule: no-speech probability above 0.6 and
mean log-probability below -1).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from umbenet_cli.errors import UserError

log = logging.getLogger(__name__)

NO_SPEECH_PROB = 0.6
LOGPROB_FLOOR = -1.0


class ASRError(UserError, RuntimeError):
    """The speech recogniser could not be loaded."""


@dataclass(frozen=True)
class Transcript:
    text: str | None  # None = no speech found
    language: str | None
    missing_reason: str | None


def load_asr(model: str, device: str = "cpu"):
    """A Whisper model by name or local checkpoint path."""
    import whisper

    path = Path(model).expanduser()
    if not path.exists() and model not in whisper.available_models():
        raise ASRError(f"Whisper model {model!r} not found; available models = "
                       f"{whisper.available_models()}, or give a local .pt checkpoint path")
    try:
        return whisper.load_model(str(path) if path.exists() else model, device=device)
    except Exception as exc:  # urllib / ssl / torch.load: all mean "could not get the weights"
        raise ASRError(
            f"could not load Whisper model {model!r}: {exc}\nFix: on a machine with internet run "
            f"`python -c \"import whisper; whisper.load_model('{model}')\"` (it saves to "
            f"~/.cache/whisper), copy the .pt file here and pass its path with --asr-model; or use "
            f"annotated text only (--text caption) where the dataset has it.") from exc


def transcribe(model, waves: list[np.ndarray], language: str | None = None,
               batch_size: int = 16, sample_len: int | None = None) -> list[Transcript]:
    """Transcribe 16 kHz mono waveforms (first 30 s of each), ``batch_size`` clips per decode."""
    import whisper

    out: list[Transcript] = []
    fp16 = next(model.parameters()).device.type == "cuda"
    options = whisper.DecodingOptions(language=language, without_timestamps=True, fp16=fp16,
                                      sample_len=sample_len)
    for start in range(0, len(waves), batch_size):
        chunk = waves[start:start + batch_size]
        mel = torch.stack([
            whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(np.asarray(w, np.float32))),
                                        n_mels=model.dims.n_mels)
            for w in chunk]).to(next(model.parameters()).device)
        with torch.no_grad():
            results = whisper.decode(model, mel, options)
        for r in results:
            text = r.text.strip()
            if r.no_speech_prob > NO_SPEECH_PROB and r.avg_logprob < LOGPROB_FLOOR:
                out.append(Transcript(None, r.language, "asr: no speech detected"))
            elif not text:
                out.append(Transcript(None, r.language, "asr: empty transcript"))
            else:
                out.append(Transcript(text, r.language, None))
    return out


def write_tiny_whisper(path: str | Path, seed: int = 0) -> Path:
    """Save a random-weight, 1-layer multilingual Whisper checkpoint (for tests and the offline
    demo). Its transcripts are noise: it exercises the pipeline, not speech recognition."""
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2,
                           n_audio_layer=1, n_vocab=51865, n_text_ctx=64, n_text_state=32,
                           n_text_head=2, n_text_layer=1)
    torch.manual_seed(seed)
    model = Whisper(dims)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path
