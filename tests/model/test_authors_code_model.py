"""The authors' released model as options: a scalar gate per token with the k gated prompts summed,
one selection per batch from the batch mean of F_fusion, keys that never train."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.model.conftest import random_batch
from umbenet_cli.model import Batch
from umbenet_cli.model.config import PoolConfig, SFFConfig
from umbenet_cli.model.prompt_pool import PromptPool, similarity
from umbenet_cli.model.sff import SparseFeatureFusion


def test_scalar_gate_weighs_each_token_and_the_k_gated_prompts_are_summed():
    torch.manual_seed(0)
    sff = SparseFeatureFusion(16, SFFConfig(gate="scalar", combine="sum", l1_lambda=0.01))
    values = torch.randn(3, 4, 5, 16)  # [B, k, L_p, D]
    p_prime, gates = sff(values)
    assert sff.w1.weight.shape == (1, 16) and not hasattr(sff, "w2")
    assert gates.shape == (3, 4, 5, 1)  # one gate per token of each selected prompt
    assert torch.allclose(gates, torch.sigmoid(values @ sff.w1.weight.T + sff.w1.bias))
    assert torch.allclose(p_prime, sum(gates[:, j] * values[:, j] for j in range(4)))
    assert torch.allclose(sff.l1_penalty(), 0.01 * sff.w1.weight.abs().sum())  # eq. 13 on their W1


def test_paper_gate_is_per_channel_and_averaged():
    torch.manual_seed(0)
    sff = SparseFeatureFusion(16, SFFConfig(hidden=8))
    values = torch.randn(3, 4, 5, 16)
    p_prime, gates = sff(values)
    assert gates.shape == values.shape
    assert torch.allclose(p_prime, (gates * values).sum(1) / 4)


def test_batch_scope_gives_every_clip_the_batch_means_top_k():
    torch.manual_seed(0)
    pool = PromptPool(6, 4, PoolConfig(size=8, length=2, top_k=3, query_scope="batch")).train()
    query = F.normalize(torch.randn(5, 6), dim=-1)
    out = pool(query, torch.tensor([1, 2, 4, 1, 7]))
    expected = similarity(query.mean(0, keepdim=True), pool.keys, "cosine").topk(3).indices[0]
    assert out["indices"].tolist() == [expected.tolist()] * 5
    # each clip counts its batch's k under its own modality subset
    assert pool.counts[1, expected].tolist() == [2, 2, 2] and pool.counts[7, expected].tolist() == [1, 1, 1]
    assert int(pool.counts.sum()) == 15
    clip = PromptPool(6, 4, PoolConfig(size=8, length=2, top_k=3)).train()
    with torch.no_grad():
        clip.keys.copy_(pool.keys)
    assert len({tuple(r) for r in clip(query, torch.ones(5, dtype=torch.long))["indices"].tolist()}) > 1


def _with_batch_mates(a: Batch, b: Batch) -> Batch:
    """Clip 0 of ``a`` with clips 1.. of ``b``."""
    return Batch(**{k: (torch.cat([v[:1], getattr(b, k)[1:]]) if torch.is_tensor(v) else v) for k, v in a.__dict__.items()})


@pytest.mark.parametrize("scope", ["clip", "batch"])
def test_a_clips_prediction_depends_on_its_batch_mates_only_under_batch_scope(make_model, scope):
    model = make_model(**{"pool.query_scope": scope, "pool.size": 16, "pool.top_k": 3}).eval()
    full = [(True, True, True)] * 4
    a = random_batch(model, full, seed=0)
    with torch.no_grad():
        alone = model(a).logits[0]
        others = [model(_with_batch_mates(a, random_batch(model, full, seed=s))).logits[0] for s in range(1, 6)]
    moved = [not torch.allclose(alone, o, atol=1e-6) for o in others]
    assert any(moved) if scope == "batch" else not any(moved)


def test_frozen_keys_take_no_gradient(make_model):
    model = make_model(**{"pool.train_keys": False, "pool.key_loss_weight": 0.0})
    assert not model.pool.keys.requires_grad and model.pool.values.requires_grad
    out = model(random_batch(model, [(True, True, True), (True, False, False)]))
    model.loss(out, torch.tensor([0, 1])).total.backward()
    assert model.pool.keys.grad is None and model.pool.values.grad is not None


def test_only_batch_scope_carries_a_note_for_eval_and_predict():
    from umbenet_cli.model.prompt_pool import batch_query_note

    assert batch_query_note(PoolConfig(), "batches of 8") is None
    assert batch_query_note(PoolConfig(query_scope="batch", enabled=False), "batches of 8") is None
    note = batch_query_note(PoolConfig(query_scope="batch", top_k=5), "batches of 8")
    assert "top-5" in note and note.endswith("(batches of 8)")
