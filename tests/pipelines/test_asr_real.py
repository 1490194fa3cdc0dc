"""Both ASR backends on real Whisper weights (tiny.en) and real speech (five LibriVox recordings):
word error rate within the bound, English detected, real silence missing with the backend's
reason, audio over 30 s transcribed whole. The openai-whisper backend runs on a checkpoint
converted from the same CTranslate2 weights (tests/pipelines/ct2_to_whisper.py)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.pipelines.asr_fixtures import WER_BOUND, ct2_tiny_en, librivox, wer

BACKENDS = ("whisper", "faster-whisper")


@pytest.fixture(scope="session")
def speech():
    """[(16 kHz waveform, reference)] of the five recordings."""
    import whisper

    return [(whisper.load_audio(str(path)), ref) for path, ref in librivox()]


@pytest.fixture(scope="session")
def tiny_en_pt(tmp_path_factory):
    """tiny.en as an openai-whisper .pt, converted once per test session."""
    from tests.pipelines.ct2_to_whisper import convert

    return convert(ct2_tiny_en(), tmp_path_factory.mktemp("tiny-en") / "tiny.en.pt")


@pytest.fixture(scope="session")
def tiny_en_model(tiny_en_pt):
    """backend -> --asr-model for the same tiny.en weights."""
    return {"whisper": str(tiny_en_pt), "faster-whisper": str(ct2_tiny_en())}


@pytest.fixture(scope="session")
def recognizer(tiny_en_model):
    from pipelines.asr import load_asr

    loaded = {}

    def get(backend):
        if backend not in loaded:
            loaded[backend] = load_asr(tiny_en_model[backend], backend)
        return loaded[backend]
    return get


SILENCE = {"digital silence": np.zeros(3 * 16000, np.float32),
           "-60 dBFS noise": np.random.default_rng(0).normal(0, 1e-3, 3 * 16000).astype(np.float32)}


@pytest.fixture(scope="session")
def decoded(recognizer, speech):
    """backend -> transcripts of the five recordings then the silences, one batched call each."""
    cache = {}

    def get(backend):
        if backend not in cache:
            waves = [w for w, _ in speech] + list(SILENCE.values())
            cache[backend] = recognizer(backend).transcribe(waves, language=None, batch_size=8)
        return cache[backend]
    return get


def test_converted_checkpoint_is_whisper_tiny_en(tiny_en_pt):
    import whisper

    model = whisper.load_model(str(tiny_en_pt))
    assert sum(p.numel() for p in model.parameters()) == 37_184_256
    assert not model.is_multilingual and model.dims.n_text_layer == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_word_error_rate_and_language(backend, decoded, speech):
    out = decoded(backend)[:len(speech)]
    assert all(t.text and t.missing_reason is None for t in out), out  # speech -> text present
    error = wer([ref for _, ref in speech], [t.text for t in out])
    # tiny.en: 4.2 % with either backend (the reference keeps the reader's "a more a amiable"); broken: ~100 %
    assert error <= WER_BOUND, (error, [t.text for t in out])
    assert [t.language for t in out] == ["en"] * len(out)  # no --language given


@pytest.mark.parametrize("backend", BACKENDS)
def test_silence_is_missing_with_the_backends_reason(backend, decoded, speech):
    silent = decoded(backend)[len(speech):]
    for name, t in zip(SILENCE, silent):
        assert t.text is None, (name, t)
        assert t.missing_reason.startswith(f"asr: no speech detected ({backend}: "), (name, t)
    if backend == "faster-whisper":
        assert all("Silero VAD" in t.missing_reason for t in silent)
    else:
        assert all("no-speech probability" in t.missing_reason for t in silent)


def test_audio_over_30_s_is_transcribed_in_windows(recognizer, speech):
    """40 s (the five recordings, then three again): two windows, both transcribed and joined."""
    wave = np.concatenate([w for w, _ in speech] + [w for w, _ in speech[:3]])
    assert len(wave) > 30 * 16000
    (t,) = recognizer("faster-whisper").transcribe([wave])
    refs = [r for _, r in speech] + [r for _, r in speech[:3]]
    assert wer([" ".join(refs)], [t.text]) <= WER_BOUND, t.text
    assert t.text.lower().count("dashwood") == 2  # the second window is there


def test_english_only_model_refuses_another_language(recognizer):
    from pipelines.asr import ASRError

    with pytest.raises(ASRError, match=r"--language 'de'.*English-only"):
        recognizer("faster-whisper").transcribe([np.zeros(16000, np.float32)], language="de")
