"""Speech-to-text for clips without annotated text: one contract, two Whisper backends.

``load_asr(model, backend, device)`` gives a recogniser; ``recogniser.transcribe(waves)`` gives one
``Transcript`` per 16 kHz mono waveform: the text, the language, and, when the text is missing,
why. A transcript is missing (never a filler string) when the backend's own no-speech signal fires
on every window of the clip, or when the decoded text is empty after stripping.

Backends (``--asr-backend``; left out, it follows the model: a ``.pt`` file -> ``whisper``, a
folder or a name -> ``faster-whisper``, the default by benchmarks/perf/README.md, "ASR backends":
on the same weights it gave the same transcripts as openai-whisper, in less time):

- ``whisper`` (openai-whisper, PyTorch): a model name (``tiny``, ``base``, ..., downloaded on
  first use to ~/.cache/whisper) or a local ``.pt`` checkpoint. No-speech rule: openai-whisper's
  own, from its ``transcribe``: a window is silent when the decoder's no-speech probability is
  above 0.6 and its mean token log-probability below -1.
- ``faster-whisper`` (CTranslate2): a model name (downloaded on first use from the Hugging Face
  hub) or a local CTranslate2 folder (``model.bin``, ``config.json``, ``tokenizer.json``).
  No-speech rule: faster-whisper's own two signals: its
  Silero voice-activity detector (``vad_filter``, default settings) finds no speech in the window
  (the window is then not decoded), or the decode gives no-speech probability above 0.6 with mean
  log-probability below -1 (its ``transcribe`` thresholds; its batched pipeline reports both
  numbers but filters on neither, so the rule is applied here).

Audio longer than 30 s (Whisper's window) is cut into consecutive 30 s windows, all decoded (the
windows of all clips of a batch together), and the texts joined with spaces; a word that straddles
a window boundary may come out split or garbled. The clip's language is that of its first window
with speech. Decoding is greedy (beam 1, temperature 0, no timestamps, no conditioning between
windows) in both backends, so they differ only in the engine.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from umbenet_cli.errors import UserError

log = logging.getLogger(__name__)

BACKENDS = ("whisper", "faster-whisper")
DEFAULT_BACKEND = "faster-whisper"  # for names; benchmarks/perf/README.md, "ASR backends": why
SAMPLE_RATE = 16000
WINDOW_SECONDS = 30
NO_SPEECH_PROB = 0.6
LOGPROB_FLOOR = -1.0


class ASRError(UserError, RuntimeError):
    """The speech recogniser could not be loaded or cannot do what was asked."""


@dataclass(frozen=True)
class Transcript:
    text: str | None  # None = no speech found
    language: str | None
    missing_reason: str | None


@dataclass(frozen=True)
class WindowResult:
    """One <= 30 s window as a backend decoded it. ``silent``: why it holds no speech (None: speech)."""

    text: str
    language: str | None
    silent: str | None = None


def check_backend(backend: str | None) -> str | None:
    """A problem line for an unknown ``--asr-backend``, or None (None: follow the model)."""
    if backend is None or backend in BACKENDS:
        return None
    return f"--asr-backend {backend!r}: choose one of {list(BACKENDS)}"


def language_problem(language: str | None) -> str | None:
    """A problem line for a ``--language`` no Whisper knows (both backends share Whisper's list)."""
    if language is None:
        return None
    from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE

    if language.lower() in LANGUAGES or language.lower() in TO_LANGUAGE_CODE:
        return None
    return (f"--language {language!r}: not a language Whisper knows; give a code such as en, zh, de, fr "
            f"(one of {len(LANGUAGES)}), or leave it out to detect it")


def language_code(language: str | None) -> str | None:
    """``English`` / ``EN`` / ``en`` -> ``en`` (None stays None: detect per clip)."""
    if language is None:
        return None
    from whisper.tokenizer import TO_LANGUAGE_CODE

    return TO_LANGUAGE_CODE.get(language.lower(), language.lower())


def split_windows(wave: np.ndarray) -> list[np.ndarray]:
    """Consecutive <= 30 s windows of a 16 kHz waveform (one window for a short or empty clip)."""
    n = WINDOW_SECONDS * SAMPLE_RATE
    wave = np.asarray(wave, dtype=np.float32)
    return [wave[s:s + n] for s in range(0, max(len(wave), 1), n)]


def to_16k(wave: np.ndarray, rate: int) -> np.ndarray:
    """A waveform at ``rate`` Hz -> 16 kHz float32 (Whisper's rate; polyphase resampling)."""
    wave = np.asarray(wave, dtype=np.float32)
    if rate == SAMPLE_RATE:
        return wave
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(SAMPLE_RATE, rate)
    return resample_poly(wave, SAMPLE_RATE // g, rate // g).astype(np.float32)


class Recognizer:
    """A loaded speech recogniser. Subclasses decode windows; this class splits and joins clips."""

    backend: str = ""
    english_only: bool = False

    def __init__(self, model: str) -> None:
        self.model_name = model

    def decode(self, windows: list[np.ndarray], language: str | None, batch_size: int) -> list[WindowResult]:
        raise NotImplementedError

    def check_language(self, language: str | None) -> None:
        """Raise ASRError when this model cannot transcribe ``language``."""
        problem = language_problem(language)
        if problem is None and self.english_only and language_code(language) not in (None, "en"):
            problem = (f"--language {language!r}: {self.model_name!r} is an English-only model; "
                       f"leave --language out (or give en), or use a multilingual model with --asr-model")
        if problem:
            raise ASRError(problem)

    def transcribe(self, waves: list[np.ndarray], language: str | None = None,
                   batch_size: int = 16) -> list[Transcript]:
        """One Transcript per 16 kHz mono waveform, in order; ``batch_size`` windows per decode."""
        self.check_language(language)
        language = language_code(language)
        if self.english_only:
            language = "en"
        owner: list[int] = []
        windows: list[np.ndarray] = []
        for i, wave in enumerate(waves):
            for w in split_windows(wave):
                owner.append(i)
                windows.append(w)
        results = self.decode(windows, language, batch_size) if windows else []
        per_clip: list[list[WindowResult]] = [[] for _ in waves]
        for i, r in zip(owner, results):
            per_clip[i].append(r)
        return [self._join(rs) for rs in per_clip]

    def _join(self, results: list[WindowResult]) -> Transcript:
        speech = [r for r in results if r.silent is None and r.text]
        if speech:
            return Transcript(" ".join(r.text for r in speech), speech[0].language, None)
        language = next((r.language for r in results if r.language), None)
        silent = [r.silent for r in results if r.silent]
        if silent:
            return Transcript(None, language, f"asr: no speech detected ({self.backend}: {silent[0]})")
        return Transcript(None, language, "asr: empty transcript")


def backend_for(model: str, backend: str | None = None) -> str:
    """The backend asked for, or the one the model fits: a file (``.pt``) -> whisper, else the default."""
    if backend is not None:
        return backend
    return "whisper" if Path(model).expanduser().is_file() else DEFAULT_BACKEND


def load_asr(model: str, backend: str | None = None, device: str = "cpu") -> Recognizer:
    """A recogniser for ``model`` (a name, a ``.pt`` file or a CTranslate2 folder) on ``device``;
    ``backend`` None follows the model (``backend_for``).

    Raises ASRError, naming the option and the fix, for an unknown backend, a model file or folder
    of the wrong kind or broken, or a named model that cannot be downloaded (offline).
    """
    problem = check_backend(backend)
    if problem:
        raise ASRError(problem)
    backend = backend_for(model, backend)
    path = Path(model).expanduser()
    if backend == "whisper":
        if path.is_dir():
            raise ASRError(f"--asr-model {model}: a folder, but --asr-backend whisper needs a model name or an "
                           f"openai-whisper .pt file; for a CTranslate2 folder pass --asr-backend faster-whisper")
        from pipelines.asr_whisper import WhisperRecognizer

        return WhisperRecognizer.load(model, device)
    if path.is_file():
        raise ASRError(f"--asr-model {model}: a file, but --asr-backend faster-whisper needs a model name or a "
                       f"CTranslate2 model folder; for an openai-whisper .pt file pass --asr-backend whisper")
    from pipelines.asr_faster import FasterWhisperRecognizer

    return FasterWhisperRecognizer.load(model, device)


def write_tiny_whisper(path: str | Path, seed: int = 0) -> Path:
    """A random-weight openai-whisper checkpoint for pipeline tests (see ``asr_whisper``)."""
    from pipelines.asr_whisper import write_tiny_whisper as write

    return write(path, seed)
