"""Plug-in reference: the Bayes classifier's form (nearest class mean, identity covariance, modalities
added as independent log-likelihoods) with the class means estimated from the training clips (the
same clips UMBEnet trains on: train + validation of the fold). Audio is read from the waveform by
measuring the log amplitude of each band's tone (``audio_latent``), i.e. band energies. The gap
between this and the Bayes figure is what the sample size costs; the gap between UMBEnet and this
is what the learning method costs.

    .venv/bin/python benchmarks/controlled/plugin_reference.py     # prints the 3 reported seeds
"""
from __future__ import annotations

import numpy as np

from umbenet_cli.data.synthetic import audio_latent


def plugin_log_likelihoods(table, train_rows: np.ndarray, sample_rate: int, num_frames: int) -> np.ndarray:
    """[N, 3, C] Gaussian log-likelihoods (video, audio, text) with class means from ``train_rows``;
    a class with no training clip of a modality gets -1e9 there (neutral has no text)."""
    C = int(table.labels.max()) + 1
    feats = [table.frame_emb.astype(np.float64).mean(1), audio_latent(table.audio, sample_rate),
             table.text_emb.astype(np.float64)]
    var = [1.0 + 0.01 / num_frames, 1.0, 1.0]
    out = np.zeros((len(table.labels), 3, C))
    y = table.labels[train_rows]
    for m, x in enumerate(feats):
        has = table.presence[train_rows, m]
        for c in range(C):
            rows = train_rows[has & (y == c)]
            if len(rows):
                out[:, m, c] = -((x - x[rows].mean(0)) ** 2).sum(-1) / (2 * var[m])
            else:
                out[:, m, c] = -1e9
        out[~table.presence[:, m], m] = 0.0
    return out


if __name__ == "__main__":
    import sys
    import tempfile
    from pathlib import Path

    HERE = Path(__file__).resolve().parent
    sys.path.insert(0, str(HERE.parents[1]))
    sys.path.insert(0, str(HERE))
    from run_controlled import CLASSES, CLIPS_PER_CLASS, MISSING, SIGNAL, SUBSETS, score

    from umbenet_cli.data.cache_read import read_features
    from umbenet_cli.data.synthetic import SyntheticSpec, bayes_predictions, write_synthetic_cache
    from umbenet_cli.training.data import make_splits

    for seed in range(3):
        d = tempfile.mkdtemp()
        spec = SyntheticSpec(classes=CLASSES, clips_per_class=CLIPS_PER_CLASS, audio_seconds=1.0, signal=SIGNAL,
                             missing=MISSING, seed=seed)
        write_synthetic_cache(d, spec, "x", "y")
        t = read_features(d)
        sp = make_splits(t, 1, 0.1, 0)
        ll = plugin_log_likelihoods(t, np.concatenate([sp.train, sp.val]), spec.sample_rate, spec.num_frames)
        y = t.labels[sp.test].astype(np.int64)
        row = {s: score(y, bayes_predictions(ll[sp.test], t.presence[sp.test], np.array([m in s for m in "VAT"])),
                        len(CLASSES))["war"] for s in SUBSETS}
        print(seed, {k: round(100 * v, 1) for k, v in row.items()})
