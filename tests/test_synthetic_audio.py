"""The synthetic generator's audio (a Gaussian latent rendered as band energies) and its Bayes
likelihoods: the latent is recoverable from the waveform, and Bayes accuracies follow the
configured ordering video > text > audio > chance."""
from __future__ import annotations

import numpy as np
import pytest

from umbenet_cli.data.cache_read import read_features
from umbenet_cli.data.synthetic import (AUDIO_BANDS, SyntheticSpec, audio_latent, band_frequencies,
                                        bayes_log_likelihoods, bayes_predictions, class_means, render_audio,
                                        write_synthetic_cache)

CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt")
SIGNAL = {"video": 1.6, "audio": 0.8, "text": 1.1}


def test_band_frequencies_are_distinct_whole_hz_in_range():
    f = band_frequencies()
    assert len(f) == AUDIO_BANDS and np.all(np.diff(f) > 0)
    assert np.all(f == np.round(f)) and f[0] >= 300 and f[-1] <= 5000


@pytest.mark.parametrize("seconds", [1.0, 2.0])
def test_latent_is_recoverable_from_the_waveform(seconds):
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((20, AUDIO_BANDS))
    waves = np.stack([render_audio(a, seconds, 16000, rng) for a in latents])
    assert np.abs(waves).max() < 1.0  # no clipping at these latents
    rec = audio_latent(waves.astype(np.float16), 16000)  # the cache stores float16
    assert np.abs(rec - latents).max() < 0.1
    assert np.abs(rec - latents).std() < 0.02


@pytest.fixture(scope="module")
def large_cache(tmp_path_factory):
    spec = SyntheticSpec(classes=CLASSES, clips_per_class=100, audio_seconds=1.0, signal=SIGNAL,
                         missing={"video": 0.0, "audio": 0.03, "text": 0.05}, seed=0)
    out = tmp_path_factory.mktemp("syn-audio")
    write_synthetic_cache(out, spec, "x", "y")
    return spec, read_features(out)


def test_bayes_accuracy_follows_the_configured_ordering(large_cache):
    spec, table = large_cache
    ll = bayes_log_likelihoods(table, spec)
    y = table.labels.astype(np.int64)
    acc = {}
    for name in ("V", "A", "T", "V+A+T"):
        pred = bayes_predictions(ll, table.presence, np.array([m in name for m in "VAT"]))
        keep = pred >= 0
        acc[name] = (pred[keep] == y[keep]).mean()
    assert acc["V+A+T"] > acc["V"] > acc["T"] > acc["A"] > 1 / len(CLASSES) + 0.1
    # Audio alone: ~31% for s_a = 0.8 with 16 bands (the Gaussian figure on the latent).
    assert 0.24 < acc["A"] < 0.38


def test_audio_bayes_matches_the_gaussian_on_the_true_latent(large_cache):
    """The likelihood from the waveform gives the same decisions as the one on the latent the
    generator drew (recomputed here from the class means and the recovered latent's residual)."""
    spec, table = large_cache
    ll = bayes_log_likelihoods(table, spec)
    has = table.presence[:, 1]
    assert np.all(ll[~has, 1] == 0.0)  # a missing modality adds nothing
    mu = spec.signal["audio"] * class_means(spec)["audio"]
    z = audio_latent(table.audio[has], spec.sample_rate)
    direct = -((z[:, None] - mu[None]) ** 2).sum(-1) / 2
    np.testing.assert_allclose(ll[has, 1], direct)
    # Class information is in the band energies: the empirical class means of the recovered
    # latent sit near the true ones (noise 1/sqrt(n) per band).
    y = table.labels[has]
    emp = np.stack([z[y == c].mean(0) for c in range(len(CLASSES))])
    assert np.abs(emp - mu).max() < 0.5
