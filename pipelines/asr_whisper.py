"""The ``whisper`` ASR backend: openai-whisper (PyTorch), windows decoded ``batch_size`` at a time.

No-speech rule (openai-whisper's own, from its ``transcribe``): a window is silent when the
decoder's no-speech probability is above 0.6 and its mean token log-probability is below -1.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from pipelines.asr import LOGPROB_FLOOR, NO_SPEECH_PROB, ASRError, Recognizer, WindowResult


class WhisperRecognizer(Recognizer):
    backend = "whisper"

    def __init__(self, model: str, whisper_model) -> None:
        super().__init__(model)
        self.model = whisper_model
        self.english_only = not whisper_model.is_multilingual

    @classmethod
    def load(cls, model: str, device: str = "cpu") -> "WhisperRecognizer":
        """By name (downloaded once to ~/.cache/whisper) or from a local ``.pt`` checkpoint."""
        import whisper

        path = Path(model).expanduser()
        if path.is_file():
            try:
                return cls(model, whisper.load_model(str(path), device=device))
            except Exception as exc:  # torch.load / KeyError('dims') / load_state_dict
                raise ASRError(
                    f"--asr-model {model}: not an openai-whisper checkpoint that loads "
                    f"({type(exc).__name__}: {exc}).\nFix: pass a .pt file saved by openai-whisper (a dict with "
                    f"'dims' and 'model_state_dict', as in ~/.cache/whisper), a model name such as base, or "
                    f"a CTranslate2 folder with --asr-backend faster-whisper.") from None
        if model not in whisper.available_models():
            raise ASRError(f"--asr-model {model!r}: no such file, and not a Whisper model name; available "
                           f"models = {whisper.available_models()}, or give a local .pt checkpoint path")
        try:
            return cls(model, whisper.load_model(model, device=device))
        except Exception as exc:  # urllib / ssl / a half-downloaded file: could not get the weights
            raise ASRError(
                f"could not load Whisper model {model!r} (--asr-backend whisper): {exc}\nFix: on a machine "
                f"with internet run `python -c \"import whisper; whisper.load_model('{model}')\"` (it saves to "
                f"~/.cache/whisper), copy the .pt file here and pass its path with --asr-model. (In `umbenet "
                f"prep`, annotated text, --text caption, needs no ASR where the dataset has it.)") from exc

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def features(self, window: np.ndarray) -> torch.Tensor:
        """Log-mel [n_mels, 3000] as openai-whisper's ``transcribe`` makes them: the spectrogram of
        the audio followed by 30 s of zeros, cut to the audio's frames, then zero padded. (Padding
        the audio first, as ``decode``'s README example does, gives a quieter silence floor, on
        which tiny.en reads digital silence as "you" with a confident log-probability.)"""
        import whisper
        from whisper.audio import HOP_LENGTH, N_FRAMES, N_SAMPLES

        wave = torch.from_numpy(np.asarray(window, np.float32))
        mel = whisper.log_mel_spectrogram(wave, self.model.dims.n_mels, padding=N_SAMPLES)
        return whisper.pad_or_trim(mel[:, :len(window) // HOP_LENGTH], N_FRAMES)

    def decode(self, windows: list[np.ndarray], language: str | None, batch_size: int) -> list[WindowResult]:
        import whisper

        options = whisper.DecodingOptions(language=language, without_timestamps=True,
                                          fp16=self.device.type == "cuda")
        out: list[WindowResult] = []
        for start in range(0, len(windows), batch_size):
            chunk = windows[start:start + batch_size]
            mel = torch.stack([self.features(w) for w in chunk]).to(self.device)
            with torch.no_grad():
                results = whisper.decode(self.model, mel, options)
            for r in results:
                silent = None
                if r.no_speech_prob > NO_SPEECH_PROB and r.avg_logprob < LOGPROB_FLOOR:
                    silent = f"no-speech probability {r.no_speech_prob:.2f}, mean log-probability {r.avg_logprob:.2f}"
                out.append(WindowResult(r.text.strip(), r.language, silent))
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
