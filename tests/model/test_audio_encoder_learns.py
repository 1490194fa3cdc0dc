"""The six-layer audio encoder learns a band-energy cue at the library's Adam 2e-3, on both inputs.

Before ``audio.residual`` and ``audio.standardize`` (both default on) it did not. This exact run
(seed 0): old log-mel stack 31% train accuracy, fixed 79%; old waveform stack 12% (chance: every
clip pooled to one vector), fixed 39%. The same run on seeds 0-4: log-mel old 31-53%, fixed 67-82%;
waveform old 12-14%, fixed 39-47%; the floors (60%, 30%) sit between the two. See
benchmarks/controlled/audio_depth.py for the diagnosis.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from umbenet_cli.data.synthetic import AUDIO_BANDS, render_audio
from umbenet_cli.model.audio import AudioEncoder
from umbenet_cli.model.config import AudioConfig

CLASSES, PER_CLASS, SECONDS, SNR = 8, 24, 0.5, 2.0


def clips(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """192 half-second clips; class c's latent is SNR * mu_c + N(0, I) over 16 log band amplitudes."""
    mu = np.random.default_rng([seed, 3]).standard_normal((CLASSES, AUDIO_BANDS))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, 4, 0])
    labels = np.arange(CLASSES * PER_CLASS) % CLASSES
    waves = np.stack([render_audio(SNR * mu[c] + rng.standard_normal(AUDIO_BANDS), SECONDS, 16000, rng) for c in labels])
    return torch.from_numpy(waves.astype(np.float32)), torch.from_numpy(labels)


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums in the same order on every machine: no flaky drift
    yield
    torch.set_num_threads(n)


def encoder(input_: str, **kw) -> AudioEncoder:
    return AudioEncoder(32, AudioConfig(input=input_, seconds=SECONDS, channels=32, conv_layers=6, hidden=64,
                                        dropout=0.0, **kw))


@pytest.mark.parametrize("input_,floor", [("logmel", 0.6), ("waveform", 0.3)])
def test_six_layers_fit_a_band_energy_cue(one_thread, input_, floor):
    x, y = clips()
    torch.manual_seed(0)
    enc, head = encoder(input_), nn.Linear(32, CLASSES)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=2e-3)
    lengths = torch.full((len(x),), x.shape[1])
    g = torch.Generator().manual_seed(0)
    for _ in range(15):  # 15 epochs of 8 batches: 120 steps
        for idx in torch.randperm(len(x), generator=g).split(24):
            loss = nn.functional.cross_entropy(head(enc(x[idx], lengths[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    enc.eval()
    with torch.no_grad():
        acc = float(head(enc(x, lengths)).argmax(1).eq(y).float().mean())
    assert acc > floor, f"{input_}: train accuracy {acc:.2f} after 120 steps (chance {1 / CLASSES:.3f})"


@pytest.mark.parametrize("input_", ["logmel", "waveform"])
def test_padding_and_companions_do_not_matter(one_thread, input_):
    """Standardisation statistics and the residual windows see only a clip's real samples.
    (Log-mel gets zero padding: its floor, the clip's maximum minus 8, is taken over the padded
    spectrogram, so loud junk after the end could raise it; the cache and the predictor pad with
    zeros.)"""
    torch.manual_seed(0)
    enc = encoder(input_).eval()
    x, _ = clips()
    S, n = x.shape[1], 3 * 1600
    alone = x[:1].clone()
    alone[0, n:] = 0
    other = x[:2].clone()
    if input_ == "waveform":
        other[0, n:] = 0.7 * torch.randn(S - n)  # junk after the clip's end
    other[1] *= 20  # a much louder companion
    with torch.no_grad():
        a = enc(alone, torch.tensor([n]))
        b = enc(other, torch.tensor([n, S]))[:1]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_checkpoint_saved_before_the_fix_keeps_its_encoder(make_model, backbone, tmp_path):
    """A config.json without the two fields (written before them) rebuilds the old stack, and the
    weights load unchanged: the fix adds no parameters."""
    import json

    from tests.model.conftest import SUBSETS, random_batch
    from umbenet_cli.model import UMBEnet

    old = make_model(**{"audio.residual": False, "audio.standardize": False}).eval()
    folder = old.save(tmp_path / "ckpt")
    cfg = json.loads((folder / "config.json").read_text())
    for key in ("residual", "standardize"):
        del cfg["audio"][key]
    (folder / "config.json").write_text(json.dumps(cfg))
    loaded = UMBEnet.load(folder, backbone=backbone).eval()
    assert not loaded.config.audio.residual and not loaded.config.audio.standardize
    batch = random_batch(old, SUBSETS)
    with torch.no_grad():
        assert torch.equal(loaded(batch).logits, old(batch).logits)
    assert set(make_model().state_dict()) == set(old.state_dict())  # same names and shapes either way
    assert all(a.shape == b.shape for a, b in zip(make_model().state_dict().values(), old.state_dict().values()))
