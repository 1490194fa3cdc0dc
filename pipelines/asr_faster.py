"""The ``faster-whisper`` ASR backend: CTranslate2 through faster-whisper's batched pipeline.

Windows of many clips are decoded together: they are laid end to end and given to
``BatchedInferencePipeline.transcribe`` as ``clip_timestamps`` (one chunk per window, no VAD
cutting), ``batch_size`` chunks per CTranslate2 call.

No-speech rule (faster-whisper's own two signals): its Silero voice-activity detector
(``faster_whisper.vad``, default settings, as ``vad_filter`` uses) finds no speech in the window,
which is then not decoded; or the decode gives no-speech probability above 0.6 with mean
log-probability below -1 (``WhisperModel.transcribe``'s thresholds; the batched pipeline reports
both numbers without filtering on them, so the rule is applied here).

Language: an English-only model is English. A multilingual model with ``--language`` given uses
it; without, each window's language is detected first (``WhisperModel.detect_language``, one more
encoder pass per window) and the windows are decoded in groups of one language, so that every
clip is reported in its own language.

Compute type: ``float32`` on the CPU, ``float16`` on CUDA. On the CPU, int8 was faster still but
one word worse on the test recordings, where float32 gave openai-whisper's transcripts exactly
(benchmarks/perf/README.md, "ASR backends").
"""
from __future__ import annotations

import bisect
import os
from pathlib import Path

import numpy as np

from pipelines.asr import (LOGPROB_FLOOR, NO_SPEECH_PROB, SAMPLE_RATE, ASRError, Recognizer,
                           WindowResult)

CT2_FILES = ("model.bin", "config.json", "tokenizer.json")
COMPUTE_TYPE = {"cpu": "float32", "cuda": "float16"}


def _device(device: str) -> tuple[str, int]:
    """``cpu`` / ``cuda`` / ``cuda:N`` -> (CTranslate2 device, index)."""
    kind, _, index = device.partition(":")
    return kind, int(index or 0)


def hub_cache() -> str:
    """The Hugging Face hub cache as huggingface_hub resolves it, read now (it reads it at import):
    HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/..."""
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return env["HF_HUB_CACHE"]
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                              "huggingface")
    return os.path.join(home, "hub")


class FasterWhisperRecognizer(Recognizer):
    backend = "faster-whisper"

    def __init__(self, model: str, whisper_model) -> None:
        from faster_whisper import BatchedInferencePipeline

        super().__init__(model)
        self.model = whisper_model
        self.pipeline = BatchedInferencePipeline(whisper_model)
        self.english_only = not whisper_model.model.is_multilingual

    @classmethod
    def load(cls, model: str, device: str = "cpu", compute_type: str | None = None,
             cpu_threads: int | None = None) -> "FasterWhisperRecognizer":
        """By name (downloaded once from the Hugging Face hub) or from a local CTranslate2 folder.

        ``cpu_threads`` default: torch's intra-op thread count when the model is loaded (prep sets
        it for its media stage), so both backends use the same threads.
        """
        import torch
        from faster_whisper import WhisperModel, available_models

        kind, index = _device(device)
        kwargs = dict(device=kind, device_index=index, compute_type=compute_type or COMPUTE_TYPE[kind],
                      cpu_threads=cpu_threads or torch.get_num_threads())
        folder = Path(model).expanduser()
        if folder.is_dir():
            missing = [f for f in CT2_FILES if not (folder / f).is_file()]
            if missing:
                raise ASRError(f"--asr-model {model}: not a CTranslate2 Whisper folder (missing {missing}).\n"
                               f"Fix: convert a Whisper model with `ct2-transformers-converter --model "
                               f"openai/whisper-base --output_dir DIR --copy_files tokenizer.json "
                               f"preprocessor_config.json` and pass DIR, or pass a model name such as base")
            try:
                return cls(model, WhisperModel(str(folder), **kwargs))
            except Exception as exc:  # CTranslate2: bad binary version, truncated file, bad config
                raise ASRError(
                    f"--asr-model {model}: the CTranslate2 Whisper folder does not load "
                    f"({type(exc).__name__}: {exc}).\nFix: convert the model again (ct2-transformers-converter "
                    f"... --copy_files tokenizer.json), or pass a model name such as base with "
                    f"--asr-backend faster-whisper") from None
        if model not in available_models() and "/" not in model:
            raise ASRError(f"--asr-model {model!r}: no such folder, and not a faster-whisper model name; "
                           f"available models = {available_models()}, a Hugging Face repo id of a "
                           f"CTranslate2 Whisper, or a local CTranslate2 folder")
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        try:
            return cls(model, WhisperModel(model, local_files_only=offline, download_root=hub_cache(), **kwargs))
        except Exception as exc:  # no network, no cached copy
            raise ASRError(
                f"could not load Whisper model {model!r} (--asr-backend faster-whisper): "
                f"{type(exc).__name__}: {exc}\nFix: on a machine with internet run `python -c \"from "
                f"faster_whisper import download_model; print(download_model('{model}'))\"`, copy the folder "
                f"it prints here and pass it with --asr-model. (In `umbenet prep`, annotated text, "
                f"--text caption, needs no ASR where the dataset has it.)") from exc

    def decode(self, windows: list[np.ndarray], language: str | None, batch_size: int) -> list[WindowResult]:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        out: list[WindowResult | None] = [None] * len(windows)
        speech = []
        for i, w in enumerate(windows):
            if len(w) == 0 or not get_speech_timestamps(w, VadOptions(), sampling_rate=SAMPLE_RATE):
                out[i] = WindowResult("", language, "Silero VAD found no speech")
            else:
                speech.append(i)
        groups: dict[str | None, list[int]] = {}
        for i in speech:
            lang = language
            if lang is None:
                lang = self.model.detect_language(windows[i])[0]
            groups.setdefault(lang, []).append(i)
        for lang, idx in groups.items():
            for start in range(0, len(idx), batch_size):
                part = idx[start:start + batch_size]
                for i, r in zip(part, self._decode_together([windows[i] for i in part], lang, batch_size)):
                    out[i] = r
        return out  # type: ignore[return-value]

    def _decode_together(self, windows: list[np.ndarray], language: str, batch_size: int) -> list[WindowResult]:
        """Windows laid end to end, one batched-pipeline chunk each -> one result per window."""
        offsets = np.cumsum([0] + [len(w) for w in windows[:-1]]) / SAMPLE_RATE
        stamps = [{"start": float(o), "end": float(o + len(w) / SAMPLE_RATE)} for o, w in zip(offsets, windows)]
        segments, info = self.pipeline.transcribe(
            np.concatenate(windows), language=language, clip_timestamps=stamps, batch_size=batch_size,
            beam_size=1, temperature=0.0, without_timestamps=True, vad_filter=False)
        texts: list[list[str]] = [[] for _ in windows]
        scores: list[tuple[float, float]] = [(0.0, 0.0)] * len(windows)
        for seg in segments:
            i = bisect.bisect_right(offsets, seg.start + 1e-3) - 1
            texts[i].append(seg.text)
            scores[i] = (seg.no_speech_prob, seg.avg_logprob)
        out = []
        for parts, (p_none, logprob) in zip(texts, scores):
            silent = None
            if p_none > NO_SPEECH_PROB and logprob < LOGPROB_FLOOR:
                silent = f"no-speech probability {p_none:.2f}, mean log-probability {logprob:.2f}"
            out.append(WindowResult("".join(parts).strip(), info.language, silent))
        return out
