"""Synthetic feature caches whose class information per modality is known.

Each clip of class c gets, independently per modality m (given the class):

    video  frame_emb[t] = s_v · mu_v[c] + e  + 0.1 · e_t       e, e_t ~ N(0, I_D)
    text   text_emb     = s_t · mu_t[c] + e                    e ~ N(0, I_D)
    audio  latent a     = s_a · mu_a[c] + e                    e ~ N(0, I_K), K = AUDIO_BANDS
           waveform     = sum_k A0 · exp(a_k) · sin(2 pi f_k t + phi_k) + floor · n
                          (f_k: K fixed tones on the mel scale, phi_k uniform, n ~ N(0, 1))

with unit-norm class means mu, so s_m is the signal-to-noise ratio of modality m. Audio carries its
class information as log band energies (the log power of tone k is 2 a_k + const), the kind of cue a
log-mel front end can pick up. The latent is recoverable from the waveform: tones at whole Hz
are orthogonal over whole seconds, and over one second the white floor's error on a tone's
amplitude (std ~6e-6) is ~35 dB below even a tone at a_k = -3.5 (float16 storage adds ~0.003 std to
the recovered a_k). So the Gaussian likelihood of the recovered latent (``audio_latent``) is, to
that small error, the Bayes-optimal audio likelihood: the Bayes audio figure is an estimate that is
exact up to the recovery error, not a proven bound.

Modalities go missing at given rates, and text is always missing for a class named "neutral" (as in MAFW). The
table has the same schema as ``umbenet prep`` writes, so training and evaluation read it unchanged.
Used by tests (a learnable problem) and by the controlled benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from umbenet_cli.data.cache_io import CacheSpec, PartWriter, features_dir


@dataclass(frozen=True)
class SyntheticSpec:
    classes: tuple[str, ...]
    clips_per_class: int = 20
    num_frames: int = 4
    embed_dim: int = 32
    audio_seconds: float = 2.0
    sample_rate: int = 16000
    signal: dict = field(default_factory=lambda: {"video": 2.0, "audio": 0.5, "text": 1.0})
    missing: dict = field(default_factory=lambda: {"video": 0.0, "audio": 0.05, "text": 0.05})
    folds: int = 5
    seed: int = 0


AUDIO_BANDS = 16  # K: dimension of the audio latent, one tone per band
AUDIO_A0 = 0.01  # tone amplitude at a_k = 0
AUDIO_GAIN = 1.0  # log-amplitude per unit of latent: tone k has amplitude A0·exp(GAIN·a_k)
AUDIO_FLOOR = 0.0005  # std of the white noise floor


def band_frequencies(k: int = AUDIO_BANDS) -> np.ndarray:
    """K tone frequencies (whole Hz), evenly spaced on the mel scale from 300 Hz to 5 kHz."""
    mel = np.linspace(2595 * np.log10(1 + 300 / 700), 2595 * np.log10(1 + 5000 / 700), k)
    return np.round(700 * (10 ** (mel / 2595) - 1))


def render_audio(latent: np.ndarray, seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Waveform [S] from an audio latent [K]: tone k at amplitude A0·exp(GAIN·a_k), random phase, plus
    the noise floor; clipped to [-1, 1] (reached only for latents far out in the tails)."""
    S = int(round(seconds * sample_rate))
    t = np.arange(S) / sample_rate
    phases = rng.uniform(0, 2 * np.pi, len(latent))
    amps = AUDIO_A0 * np.exp(AUDIO_GAIN * latent)
    wave = (amps[:, None] * np.sin(2 * np.pi * band_frequencies(len(latent))[:, None] * t[None] + phases[:, None])).sum(0)
    return np.clip(wave + AUDIO_FLOOR * rng.standard_normal(S), -1, 1)


def audio_latent(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Recover the latent [N, K] from waveforms [N, S] (zero padding after a clip's end is harmless
    only if S covers whole seconds of real audio, as the generator writes): the amplitude of tone k
    is 2|sum_n x_n e^{-i w_k n}| / S, and a_k = log(amplitude / A0) / GAIN."""
    x = np.asarray(audio, dtype=np.float64)
    S = x.shape[1]
    t = np.arange(S) / sample_rate
    basis = np.exp(-2j * np.pi * band_frequencies()[:, None] * t[None, :])  # [K, S]
    amp = 2 * np.abs(x @ basis.T) / S
    return np.log(np.maximum(amp, 1e-12) / AUDIO_A0) / AUDIO_GAIN


def class_means(spec: SyntheticSpec) -> dict[str, np.ndarray]:
    """Unit-norm class means per modality: video and text [C, D], audio [C, K] (fixed by the seed)."""
    rng = np.random.default_rng([spec.seed, 1])
    out = {}
    for m in ("video", "text"):
        mu = rng.standard_normal((len(spec.classes), spec.embed_dim))
        out[m] = mu / np.linalg.norm(mu, axis=1, keepdims=True)
    mu = np.random.default_rng([spec.seed, 3]).standard_normal((len(spec.classes), AUDIO_BANDS))
    out["audio"] = mu / np.linalg.norm(mu, axis=1, keepdims=True)
    return out


def write_synthetic_cache(out: str | Path, spec: SyntheticSpec, backbone: str, fingerprint: str) -> Path:
    """Write a features table to ``out``; returns the cache folder."""
    rng = np.random.default_rng([spec.seed, 2])  # missing flags, video, text
    rng_audio = np.random.default_rng([spec.seed, 4])  # audio: its own stream, so that video and text do not depend on it
    means = class_means(spec)
    C, T, D = len(spec.classes), spec.num_frames, spec.embed_dim
    S = int(round(spec.audio_seconds * spec.sample_rate))
    cspec = CacheSpec(dataset="synthetic", classes=tuple(spec.classes), num_frames=T,
                      audio_seconds=spec.audio_seconds, sample_rate=spec.sample_rate,
                      sampling="synthetic", embed_dim=D, backbone=backbone, backbone_fingerprint=fingerprint)
    neutral = [i for i, c in enumerate(spec.classes) if c.lower() == "neutral"]
    with PartWriter(features_dir(out), cspec, rows_per_part=4096) as writer:
        for i in range(C * spec.clips_per_class):
            c = i % C
            has = {m: rng.random() >= spec.missing[m] for m in ("video", "audio", "text")}
            if c in neutral:
                has["text"] = False
            if not any(has.values()):
                has["video"] = True
            frame = spec.signal["video"] * means["video"][c] + rng.standard_normal(D)
            frames = frame[None] + 0.1 * rng.standard_normal((T, D))
            text = spec.signal["text"] * means["text"][c] + rng.standard_normal(D)
            latent = spec.signal["audio"] * means["audio"][c] + rng_audio.standard_normal(AUDIO_BANDS)
            wave = render_audio(latent, spec.audio_seconds, spec.sample_rate, rng_audio)
            reasons = [f"{m}: synthetic missing" for m, h in has.items() if not h]
            writer.write({
                "clip_id": f"syn{i:06d}", "label": c, "fold": 1 + (i // C) % spec.folds,
                "status": "partial" if reasons else "ok", "status_reason": "; ".join(reasons),
                "n_source_frames": T, "n_valid_frames": T if has["video"] else 0, "face_ratio": 1.0,
                "audio_num_samples": S if has["audio"] else 0,
                "text": f"synthetic caption {c}" if has["text"] else None,
                "text_source": "annotation" if has["text"] else "none", "text_language": None,
                "frame_emb": frames.astype(np.float32) if has["video"] else None,
                "audio": wave.astype(np.float32) if has["audio"] else None,
                "text_emb": text.astype(np.float32) if has["text"] else None,
            })
    return Path(out)


def bayes_log_likelihoods(table, spec: SyntheticSpec) -> np.ndarray:
    """log p(x_m | c) per clip, modality and class: [N, 3, C] (video, audio, text), computed from
    the cached data with the generator's true parameters. Modalities are independent given the
    class, so the Bayes-optimal posterior of any subset is the sum over its present modalities.

    video: the frame mean is s_v mu_c + noise with covariance (1 + 0.01/T) I.
    text:  s_t mu_c + N(0, I).
    audio: s_a mu_c + N(0, I_K) on the latent recovered from the waveform (``audio_latent``); the
           recovery error is tiny against the unit latent noise, so this is the Bayes likelihood
           to a close approximation (an estimate, not an exact bound).
    """
    means = class_means(spec)
    C, T = len(spec.classes), spec.num_frames
    out = np.zeros((len(table.labels), 3, C))
    xv = table.frame_emb.astype(np.float64).mean(1)
    var_v = 1.0 + 0.01 / T
    out[:, 0] = -((xv[:, None, :] - spec.signal["video"] * means["video"][None]) ** 2).sum(-1) / (2 * var_v)
    xt = table.text_emb.astype(np.float64)
    out[:, 2] = -((xt[:, None, :] - spec.signal["text"] * means["text"][None]) ** 2).sum(-1) / 2
    xa = audio_latent(table.audio, spec.sample_rate)
    out[:, 1] = -((xa[:, None, :] - spec.signal["audio"] * means["audio"][None]) ** 2).sum(-1) / 2
    out[~table.presence[:, 1], 1] = 0.0
    return out


def bayes_predictions(loglik: np.ndarray, presence: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """Bayes-optimal class per clip using the subset's modalities it has; -1 where it has none."""
    use = presence & subset[None, :]
    score = (loglik * use[:, :, None]).sum(1)
    pred = score.argmax(1)
    pred[~use.any(1)] = -1
    return pred
