"""Synthetic feature caches whose class information per modality is known.

Each clip of class c gets, independently per modality m (given the class):

    video  frame_emb[t] = s_v · mu_v[c] + e  + 0.1 · e_t       e, e_t ~ N(0, I_D)
    text   text_emb     = s_t · mu_t[c] + e                    e ~ N(0, I_D)
    audio  waveform     = 0.2 · (s_a · sin(2 pi f_c t + phi) + n)   f_c per class, n ~ N(0, 1)

with unit-norm class means mu, so s_m is the signal-to-noise ratio of modality m. Modalities go
missing at given rates, and text is always missing for a class named "neutral" (as in MAFW). The
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


AUDIO_SCALE = 0.2


def class_frequencies(n_classes: int) -> np.ndarray:
    """One tone per class (Hz), well apart and below 8 kHz."""
    return 200.0 * 1.25 ** np.arange(n_classes)


def class_means(spec: SyntheticSpec) -> dict[str, np.ndarray]:
    """Unit-norm class means per embedded modality, [C, D] each (fixed by the seed)."""
    rng = np.random.default_rng([spec.seed, 1])
    out = {}
    for m in ("video", "text"):
        mu = rng.standard_normal((len(spec.classes), spec.embed_dim))
        out[m] = mu / np.linalg.norm(mu, axis=1, keepdims=True)
    return out


def write_synthetic_cache(out: str | Path, spec: SyntheticSpec, backbone: str, fingerprint: str) -> Path:
    """Write a features table to ``out``; returns the cache folder."""
    rng = np.random.default_rng([spec.seed, 2])
    means = class_means(spec)
    C, T, D = len(spec.classes), spec.num_frames, spec.embed_dim
    S = int(round(spec.audio_seconds * spec.sample_rate))
    t = np.arange(S) / spec.sample_rate
    freqs = class_frequencies(C)
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
            wave = spec.signal["audio"] * np.sin(2 * np.pi * freqs[c] * t + rng.uniform(0, 2 * np.pi))
            wave = np.clip(AUDIO_SCALE * (wave + rng.standard_normal(S)), -1, 1)  # clipping: beyond 4.5 sigma
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
    audio: a tone of known frequency and unknown uniform phase in white noise: the likelihood
           is I0(A R_c / sigma^2) up to class-independent terms, R_c = |sum_n x_n e^{-i w_c n}|.
    """
    means = class_means(spec)
    C, T = len(spec.classes), spec.num_frames
    out = np.zeros((len(table.labels), 3, C))
    xv = table.frame_emb.astype(np.float64).mean(1)
    var_v = 1.0 + 0.01 / T
    out[:, 0] = -((xv[:, None, :] - spec.signal["video"] * means["video"][None]) ** 2).sum(-1) / (2 * var_v)
    xt = table.text_emb.astype(np.float64)
    out[:, 2] = -((xt[:, None, :] - spec.signal["text"] * means["text"][None]) ** 2).sum(-1) / 2
    S = table.audio.shape[1]
    t = np.arange(S) / spec.sample_rate
    basis = np.exp(-2j * np.pi * class_frequencies(C)[:, None] * t[None, :])  # [C, S]
    R = np.abs(table.audio.astype(np.float64) @ basis.T)  # [N, C]
    amp, sigma = AUDIO_SCALE * spec.signal["audio"], AUDIO_SCALE
    z = amp * R / sigma ** 2
    out[:, 1] = np.where(z < 50, np.log(np.i0(np.minimum(z, 50))), z - 0.5 * np.log(2 * np.pi * np.maximum(z, 1e-9)))
    return out


def bayes_predictions(loglik: np.ndarray, presence: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """Bayes-optimal class per clip using the subset's modalities it has; -1 where it has none."""
    use = presence & subset[None, :]
    score = (loglik * use[:, :, None]).sum(1)
    pred = score.argmax(1)
    pred[~use.any(1)] = -1
    return pred
