"""Under autocast (bfloat16, as on a GPU; here torch.autocast("cpu")) the prompt-pool scores, the
balancing, top-k and the logits stay in float32."""
from __future__ import annotations

import torch

from umbenet_cli.model.config import PoolConfig
from umbenet_cli.model.prompt_pool import PromptPool
from tests.model.conftest import SUBSETS, random_batch

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def test_pool_scores_and_topk_in_float32():
    torch.manual_seed(0)
    pool = PromptPool(64, 16, PoolConfig(size=32, length=2, top_k=4, query="cosine", balance=True))
    query = torch.randn(256, 64)
    code = torch.full((256,), 7)
    for training in (False, True):
        pool.train(training)
        pool.counts.zero_()
        ref = pool(query, code)
        pool.counts.zero_()
        with torch.autocast(**BF16):
            got = pool(query, code)
        assert got["scores"].dtype is torch.float32
        # Same prompts as in float32 (bfloat16 scores tie: ~20 distinct values among 32 keys per row).
        assert torch.equal(got["indices"], ref["indices"])
        assert torch.equal(got["scores"], ref["scores"])


def test_pool_balance_in_float32_under_autocast():
    torch.manual_seed(1)
    pool = PromptPool(64, 16, PoolConfig(size=32, length=2, top_k=4, query="l2", balance=True)).train()
    pool.counts.random_(0, 1000)
    query = torch.randn(128, 64)
    counts = pool.counts.clone()
    ref = pool(query, torch.full((128,), 3))["indices"]
    pool.counts.copy_(counts)
    with torch.autocast(**BF16):
        got = pool(query, torch.full((128,), 3))["indices"]
    assert torch.equal(got, ref)


def test_logits_in_float32_under_autocast(make_model):
    model = make_model().eval()
    batch = random_batch(model, SUBSETS * 2)
    with torch.no_grad():
        ref = model(batch)
        with torch.autocast(**BF16):
            out = model(batch)
    assert out.logits.dtype is torch.float32
    # Inputs to the logits come out of bfloat16 layers, so values differ a little, but they are not
    # quantised to bfloat16's steps (0.125 between 16 and 32 at logit scale ~ 100).
    assert not torch.equal(out.logits, out.logits.to(torch.bfloat16).float())
    assert torch.allclose(out.logits, ref.logits, atol=1.0)
