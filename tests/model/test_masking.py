"""A missing modality has no influence at all; a clip does not depend on its batch-mates."""
from __future__ import annotations

import pytest
import torch

from tests.model.conftest import SUBSETS, random_batch

FIELDS = {"video": ("frame_emb",), "audio": ("audio",), "text": ("text_emb",)}


def _scramble(batch, modality: str, how: str):
    """A copy of ``batch`` with one modality's inputs replaced by noise, huge values or NaN."""
    new = batch.with_present(batch.present)
    for name in FIELDS[modality]:
        x = getattr(batch, name)
        fresh = {"noise": torch.randn_like(x) * 5, "huge": torch.full_like(x, 1e6),
                 "nan": torch.full_like(x, float("nan"))}[how]
        setattr(new, name, fresh)
    return new


@pytest.mark.parametrize("subset", SUBSETS, ids=lambda s: "".join(m for m, on in zip("VAT", s) if on))
@pytest.mark.parametrize("how", ["noise", "huge", "nan"])
def test_missing_modality_input_does_not_move_logits(make_model, subset, how):
    model = make_model().eval()
    batch = random_batch(model, [subset] * 3)
    with torch.no_grad():
        ref = model(batch).logits
        for modality, on in zip(("video", "audio", "text"), subset):
            if not on:
                other = model(_scramble(batch, modality, how)).logits
                torch.testing.assert_close(other, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("modality", ["video", "audio", "text"])
def test_present_modality_input_moves_logits(make_model, modality):
    # The counterpart: if masking were broken everywhere, the test above could pass vacuously.
    model = make_model().eval()
    batch = random_batch(model, [(True, True, True)] * 2)
    with torch.no_grad():
        assert not torch.allclose(model(batch).logits, model(_scramble(batch, modality, "noise")).logits, atol=1e-4)


def test_padded_frames_and_audio_tail_do_not_matter(make_model):
    model = make_model().eval()
    batch = random_batch(model, [(True, True, True)] * 2)
    batch.audio_len = torch.tensor([model.audio.num_samples // 2, model.audio.num_samples])
    with torch.no_grad():
        ref = model(batch).logits
        T = model.config.num_frames
        batch.frame_emb[0, T // 2:] = 100.0  # padding frames of clip 0
        batch.audio[0, model.audio.num_samples // 2:] = 0.9  # past the real audio
        torch.testing.assert_close(model(batch).logits, ref, rtol=0, atol=1e-5)


def test_clip_prediction_independent_of_batch(make_model):
    model = make_model().eval()
    batch = random_batch(model, SUBSETS)
    with torch.no_grad():
        together = model(batch).logits
        for i in range(len(SUBSETS)):
            alone = model(_slice(batch, i)).logits
            torch.testing.assert_close(alone[0], together[i], rtol=0, atol=1e-4)


def test_clip_without_any_modality_is_rejected(make_model):
    model = make_model().eval()
    batch = random_batch(model, [(False, False, False)])
    with pytest.raises(ValueError, match="at least one present modality"):
        model(batch)


def _slice(batch, i):
    new = batch.with_present(batch.present[i:i + 1])
    for name in ("frame_emb", "frame_mask", "audio", "audio_len", "text_emb"):
        setattr(new, name, getattr(batch, name)[i:i + 1])
    return new


def test_one_encode_serves_every_subset(make_model):
    # eval reuses the encoders' output across modality subsets; it must equal a full forward.
    model = make_model().eval()
    batch = random_batch(model, [(True, True, True)] * 3)
    with torch.no_grad():
        streams = model.encode(batch)
        for subset in SUBSETS:
            present = torch.tensor([subset] * 3)
            torch.testing.assert_close(model.head(streams, present).logits,
                                       model(batch.with_present(present)).logits, rtol=0, atol=1e-5)
