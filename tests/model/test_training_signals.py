"""Gradients reach every trainable part and never the frozen towers; loss parts are what they claim."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.model.conftest import SUBSETS, random_batch


def test_gradients_reach_trainable_parts_and_not_clip(make_model):
    model = make_model().train()
    batch = random_batch(model, SUBSETS + [(True, True, True)])
    labels = torch.arange(len(SUBSETS) + 1) % len(model.config.classes)
    frozen_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # deliberately given every parameter
    loss = model.loss(model(batch), labels)
    loss.total.backward()

    def grad_norm(module_params):
        return sum(p.grad.abs().sum().item() for p in module_params if p.grad is not None)

    for name, part in {
        "pool keys": [model.pool.keys], "pool values": [model.pool.values],
        "sff": model.sff.parameters(), "inherent prompts": [model.class_prompts.inherent],
        "temporal transformer": model.visual.parameters(), "fusion": model.fusion.parameters(),
        "audio encoder": model.audio.parameters(), "text projection": model.text.parameters(),
    }.items():
        assert grad_norm(part) > 0, f"no gradient reached the {name}"
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(not p.requires_grad for p in model.backbone.parameters())
    opt.step()
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, frozen_before[k]), f"frozen CLIP weight {k} changed"


def test_backbone_stays_in_eval_mode(make_model):
    model = make_model().train()
    assert model.training and not model.backbone.training and not model.backbone.clip.training


def test_loss_parts_match_hand_computation(make_model):
    model = make_model().train()
    batch = random_batch(model, [(True, True, True), (True, False, True), (False, True, False)])
    labels = torch.tensor([0, 3, 10])
    out = model(batch)
    parts = model.loss(out, labels)
    ce = -torch.stack([F.log_softmax(out.logits[i], -1)[labels[i]] for i in range(3)]).mean()
    torch.testing.assert_close(parts.ce, ce)
    l1 = model.config.sff.l1_lambda * model.sff.w1.weight.abs().sum()
    torch.testing.assert_close(parts.l1, l1)
    key = model.config.pool.key_loss_weight * out.key_loss
    torch.testing.assert_close(parts.key, key)
    torch.testing.assert_close(parts.total, ce + l1 + key + parts.gate_l1)
    assert parts.gate_l1.item() == 0.0  # switched off in the tiny preset


def test_gate_l1_switch(make_model):
    model = make_model(**{"sff.gate_l1": 0.01}).train()
    out = model(random_batch(model, [(True, True, True)]))
    parts = model.loss(out, torch.tensor([1]))
    torch.testing.assert_close(parts.gate_l1, 0.01 * out.gates.abs().mean())


def test_logits_are_scaled_cosines(make_model):
    model = make_model().eval()
    out = model(random_batch(model, [(True, True, True)]))
    scale = model.backbone.logit_scale().item()
    assert out.logits.abs().max().item() <= scale + 1e-4
    torch.testing.assert_close(out.fused.norm(dim=-1), torch.ones(1))


def test_pool_can_be_switched_off(make_model):
    model = make_model(**{"pool.enabled": False}).train()
    out = model(random_batch(model, [(True, False, False), (False, False, True)]))
    assert out.logits.shape == (2, 11) and out.selected is None
    assert model.loss(out, torch.tensor([0, 1])).key.item() == 0.0


def test_raw_inputs_match_cached_inputs(make_model):
    # predict passes raw frames and text; the cache holds their frozen embeddings: same result.
    model = make_model().eval()
    bb = model.backbone
    T = model.config.num_frames
    g = torch.Generator().manual_seed(1)
    frames_u8 = torch.randint(0, 256, (1, T, 40, 48, 3), generator=g, dtype=torch.uint8)
    pixels = bb.preprocess(frames_u8)
    text = ["a person frowns and looks away"]
    batch = random_batch(model, [(True, False, True)])
    raw = batch.with_present(batch.present)
    raw.frame_emb, raw.frames, raw.text_emb, raw.text = None, pixels, None, text
    cached = batch.with_present(batch.present)
    cached.frame_emb = bb.encode_images(pixels[0]).unsqueeze(0)
    cached.text_emb = bb.encode_texts(text)
    with torch.no_grad():
        torch.testing.assert_close(model(raw).logits, model(cached).logits, rtol=0, atol=1e-5)


def test_logmel_audio_input(make_model):
    model = make_model(**{"audio.input": "logmel"}).train()
    out = model(random_batch(model, [(False, True, False)] * 2))
    model.loss(out, torch.tensor([0, 1])).total.backward()
    assert model.audio.convs[0].weight.grad.abs().sum() > 0


def test_scene_stream_is_mixed_per_frame(make_model):
    model = make_model(**{"temporal.scene_stream": True}).eval()
    batch = random_batch(model, [(True, False, False)] * 2)
    batch.scene_emb = torch.randn_like(batch.frame_emb)
    with torch.no_grad():
        ref = model(batch).logits
        other = batch.with_present(batch.present)
        other.scene_emb = torch.randn_like(batch.frame_emb)
        assert not torch.allclose(model(other).logits, ref, atol=1e-4)
        # Scene frames of a clip whose video is missing do not matter either.
        missing = batch.with_present(torch.tensor([[False, True, False]] * 2))
        moved = missing.with_present(missing.present)
        moved.scene_emb = batch.scene_emb * 100
        torch.testing.assert_close(model(moved).logits, model(missing).logits, rtol=0, atol=1e-5)


def test_logmel_of_a_clip_ignores_its_batch_companions():
    """Whisper floors the spectrogram below the whole tensor's maximum; ours floors per clip."""
    from whisper.audio import log_mel_spectrogram

    from umbenet_cli.model.audio import log_mel

    g = torch.Generator().manual_seed(0)
    quiet = 1e-4 * torch.randn(1, 8000, generator=g)
    loud = 0.9 * torch.sin(torch.arange(8000) / 3.0)[None]
    alone = log_mel(quiet)
    torch.testing.assert_close(alone, log_mel_spectrogram(quiet[0], n_mels=80)[None], rtol=0, atol=1e-5)
    torch.testing.assert_close(log_mel(torch.cat([quiet, loud]))[:1], alone, rtol=0, atol=1e-5)
    # The whisper call on the same batch would have changed the quiet clip's features.
    assert not torch.allclose(log_mel_spectrogram(torch.cat([quiet, loud]), n_mels=80)[:1], alone, atol=1e-3)
