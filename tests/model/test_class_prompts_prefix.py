"""The shared-prefix class-prompt pass is the plain pass (B x C full sequences), only cheaper.

Checked on the tiny backbone with MAFW's 11 classes, whose names take different numbers of tokens
("helplessness." is 4 tokens + [EOS], "anxiety." 2 + [EOS]), so every class's [EOS] sits at its own
position: outputs and the gradients that train P' and the inherent prompts, in float32, under bf16
autocast and under no_grad; the fallback to the plain pass for towers of another layout; and the
whole model (training loss, gradients, the per-subset head at eval) with either pass.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tests.model.conftest import SUBSETS, random_batch
from umbenet_cli.data.classes import MAFW_CLASSES
from umbenet_cli.model.class_prompts import ClassPromptEncoder, shared_prefix_supported

B = 3


def make_encoder(backbone, pool_length: int = 6, inherent_length: int = 4, seed: int = 0) -> ClassPromptEncoder:
    torch.manual_seed(seed)
    enc = ClassPromptEncoder(backbone, MAFW_CLASSES, False, pool_length, inherent_length)
    with torch.no_grad():
        enc.inherent.normal_(0, 0.5)  # larger than the init, so the prompts matter to the output
    return enc


def pool_prompts(backbone, pool_length: int = 6, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(B, pool_length, backbone.dims.token_dim, generator=g)


def run(enc: ClassPromptEncoder, fn, p: torch.Tensor | None, weight: torch.Tensor | None = None):
    """Embeddings and the gradients of a random linear loss wrt P' and the inherent prompts."""
    p = None if p is None else p.detach().clone().requires_grad_(True)
    enc.inherent.grad = None
    e = fn(p)
    w = weight if weight is not None else torch.randn(e.shape, generator=torch.Generator().manual_seed(2))
    (e.float() * w).sum().backward()
    g_inh = enc.inherent.grad.detach().clone()
    enc.inherent.grad = None
    return e.detach(), (None if p is None else p.grad.detach()), g_inh


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def test_class_names_take_different_token_counts(backbone):
    enc = make_encoder(backbone)
    lengths = (enc.eos_pos - enc.pool_length - enc.inherent.shape[0]).tolist()  # class tokens + [EOS]
    name_len = dict(zip(MAFW_CLASSES, lengths))
    assert name_len["helplessness"] > name_len["anxiety"]
    assert len(set(lengths)) > 1
    assert enc.shared_prefix  # the HF CLIPTextModel layout: the shared pass is the default
    assert enc.packed.shape[0] == sum(lengths)  # packed, no padding


def test_shared_equals_plain_float32(backbone):
    enc = make_encoder(backbone)
    p = pool_prompts(backbone)
    e_plain, gp_plain, gi_plain = run(enc, enc.forward_plain, p)
    e_shared, gp_shared, gi_shared = run(enc, enc.forward_shared, p)
    e_default, _, _ = run(enc, enc, p)
    assert e_plain.shape == e_shared.shape == (B, len(MAFW_CLASSES), backbone.dims.embed_dim)
    assert max_diff(e_shared, e_plain) < 1e-6
    assert torch.equal(e_default, e_shared)  # forward takes the shared pass
    # Gradients: absolute 1e-5 where they are O(1), relative beyond (the inherent prompts' gradient
    # sums over B x C sequences).
    assert gp_plain.abs().max() > 1e-3 and gi_plain.abs().max() > 1e-3
    assert max_diff(gp_shared, gp_plain) < 1e-5 * max(1.0, gp_plain.abs().max().item())
    assert max_diff(gi_shared, gi_plain) < 1e-5 * max(1.0, gi_plain.abs().max().item())
    # Each clip's embeddings depend on its own P' only.
    p2 = pool_prompts(backbone).clone()
    p2[1] += torch.randn(p2[1].shape, generator=torch.Generator().manual_seed(3))
    e2 = enc.forward_shared(p2).detach()
    assert max_diff(e2[0], e_shared[0]) == 0 and max_diff(e2[2], e_shared[2]) == 0
    assert max_diff(e2[1], e_shared[1]) > 1e-3


def test_shared_equals_plain_without_pool(backbone):
    enc = make_encoder(backbone, pool_length=0)
    e_plain, _, gi_plain = run(enc, enc.forward_plain, None)
    e_shared, _, gi_shared = run(enc, enc.forward_shared, None)
    assert e_shared.shape == (1, len(MAFW_CLASSES), backbone.dims.embed_dim)
    assert max_diff(e_shared, e_plain) < 1e-6
    assert max_diff(gi_shared, gi_plain) < 1e-5 * max(1.0, gi_plain.abs().max().item())


def test_shared_equals_plain_no_grad(backbone):
    enc = make_encoder(backbone)
    p = pool_prompts(backbone)
    with torch.no_grad():
        e_plain, e_shared = enc.forward_plain(p), enc(p)
    assert not e_shared.requires_grad
    assert max_diff(e_shared, e_plain) < 1e-6


def test_shared_under_bf16_autocast(backbone):
    enc = make_encoder(backbone)
    p = pool_prompts(backbone)
    e32, gp32, gi32 = run(enc, enc.forward_plain, p)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        e_plain, gp_plain, gi_plain = run(enc, enc.forward_plain, p)
        e_shared, gp_shared, gi_shared = run(enc, enc.forward_shared, p)
    assert e_shared.dtype == e_plain.dtype
    # bf16 keeps ~3 significant digits: both passes are that close to float32 and to each other.
    assert max_diff(e_shared, e_plain) < 2e-2
    assert max_diff(e_shared, e32) < 2e-2
    for g_shared, g_plain, g32 in ((gp_shared, gp_plain, gp32), (gi_shared, gi_plain, gi32)):
        assert torch.isfinite(g_shared).all()
        scale = g32.abs().max().item()
        assert max_diff(g_shared, g32) < 5e-2 * scale
        assert max_diff(g_shared, g_plain) < 5e-2 * scale


class _OtherLayer(nn.Module):
    """An encoder layer of another design (same attribute names, a different function)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.inner = layer

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        return self.inner(hidden_states, attention_mask, **kwargs) * 0.5


def test_shared_pass_runs_the_towers_own_layers(backbone):
    # The packed sequence goes through text.encoder itself: a tower whose layers compute something
    # else gets that something else, exactly as its plain pass does (nothing re-enacted here).
    other = copy.deepcopy(backbone)  # the session's backbone stays untouched
    layers = other.text_model.encoder.layers
    for i in range(len(layers)):
        layers[i] = _OtherLayer(layers[i])
    enc = make_encoder(other)
    assert enc.shared_prefix
    p = pool_prompts(other)
    e_plain, gp_plain, _ = run(enc, enc.forward_plain, p)
    e_shared, gp_shared, _ = run(enc, enc.forward_shared, p)
    assert max_diff(e_shared, e_plain) < 1e-6
    assert max_diff(gp_shared, gp_plain) < 1e-5 * max(1.0, gp_plain.abs().max().item())
    assert max_diff(e_plain, make_encoder(backbone).forward_plain(p)) > 1e-3  # another function indeed


class _OtherEmbeddings(nn.Module):
    """Embeddings of another design: positions are not added (e.g. a rotary tower)."""

    def __init__(self, emb: nn.Module) -> None:
        super().__init__()
        self.token_embedding, self.position_embedding = emb.token_embedding, emb.position_embedding

    def forward(self, input_ids=None, position_ids=None, inputs_embeds=None):
        return inputs_embeds if inputs_embeds is not None else self.token_embedding(input_ids)


def test_fallback_for_unsupported_tower(backbone):
    other = copy.deepcopy(backbone)
    other.text_model.embeddings = _OtherEmbeddings(other.text_model.embeddings)
    assert not shared_prefix_supported(other.text_model)
    enc = make_encoder(other)
    assert not enc.shared_prefix
    p = pool_prompts(other)
    e, gp, gi = run(enc, enc, p)
    e_plain, gp_plain, gi_plain = run(enc, enc.forward_plain, p)
    assert torch.equal(e, e_plain) and torch.equal(gp, gp_plain) and torch.equal(gi, gi_plain)
    # The shared pass (which adds learned positions) would not have been this tower's function.
    assert max_diff(enc.forward_shared(p), e_plain) > 1e-3


def test_attention_implementations(backbone):
    # eager takes an additive mask, sdpa a boolean one; both give the plain result. An
    # implementation without 4-D masks (flash attention) falls back to the plain pass.
    other = copy.deepcopy(backbone)
    other.text_model.config._attn_implementation = "eager"
    enc = make_encoder(other)
    assert enc.shared_prefix
    p = pool_prompts(other)
    e_sdpa = make_encoder(backbone).forward_plain(p)
    assert max_diff(enc.forward_shared(p), enc.forward_plain(p)) < 1e-6
    assert max_diff(enc.forward_plain(p), e_sdpa) < 1e-5
    other.text_model.config._attn_implementation = "flash_attention_2"
    assert not shared_prefix_supported(other.text_model)


def test_no_deprecated_transformers_call(backbone, recwarn):
    enc = make_encoder(backbone)
    p = pool_prompts(backbone)
    enc.forward_plain(p), enc.forward_shared(p)
    # transformers 5.24 deprecated create_causal_mask(past_key_values=...) (removed in 5.40).
    assert not [str(w.message) for w in recwarn if issubclass(w.category, (FutureWarning, DeprecationWarning))]


@pytest.mark.parametrize("tower", [nn.Linear(2, 2), nn.Module(), None])
def test_support_check_never_raises(tower):
    assert shared_prefix_supported(tower) is False


def test_support_check_missing_attribute(backbone):
    other = copy.deepcopy(backbone)
    del other.text_model.final_layer_norm
    assert shared_prefix_supported(other.text_model) is False
    assert shared_prefix_supported(backbone.text_model) is True


def test_model_with_shared_prefix_equals_plain(make_model):
    """Training forward + loss + backward, and the eval head for every modality subset."""
    model = make_model().train()
    assert model.class_prompts.shared_prefix
    batch = random_batch(model, SUBSETS + [(True, True, True)])
    labels = torch.arange(len(SUBSETS) + 1) % len(model.config.classes)
    counts = model.pool.counts.clone()  # training forwards update the pool's selection counts
    results = {}
    for shared in (True, False):
        model.class_prompts.shared_prefix = shared
        model.zero_grad(set_to_none=True)
        model.pool.counts.copy_(counts)
        torch.manual_seed(5)  # the same dropout masks in both runs
        out = model(batch)
        model.loss(out, labels).total.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        results[shared] = (out.logits.detach(), grads)
    model.class_prompts.shared_prefix = True
    (l_s, g_s), (l_p, g_p) = results[True], results[False]
    assert max_diff(l_s, l_p) < 1e-4 * max(1.0, l_p.abs().max().item())  # logits carry CLIP's scale
    assert g_s.keys() == g_p.keys() and "class_prompts.inherent" in g_s and "pool.values" in g_s
    for k in g_s:
        assert max_diff(g_s[k], g_p[k]) < 1e-4 * max(1.0, g_p[k].abs().max().item()), k

    model.eval()
    with torch.no_grad():
        streams = model.encode(batch)
        for present in SUBSETS:
            mask = torch.tensor([present] * batch.present.shape[0])
            model.class_prompts.shared_prefix = True
            a = model.head(streams, mask).logits
            model.class_prompts.shared_prefix = False
            b = model.head(streams, mask).logits
            assert max_diff(a, b) < 1e-4 * max(1.0, b.abs().max().item()), present
    model.class_prompts.shared_prefix = True
