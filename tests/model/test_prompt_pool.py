"""Prompt pool: top-k per clip, query functions, frequency balancing, stage-2 transfer."""
from __future__ import annotations

import pytest
import torch

from umbenet_cli.model.config import PoolConfig
from umbenet_cli.model.prompt_pool import PromptPool, balance_scores, similarity
from umbenet_cli.training.two_stage import transfer_activated


def _pool(keys, query="cosine", top_k=1, balance=False, length=2):
    pool = PromptPool(key_dim=keys.shape[1], token_dim=3,
                      cfg=PoolConfig(size=keys.shape[0], length=length, top_k=top_k, query=query, balance=balance))
    with torch.no_grad():
        pool.keys.copy_(keys)
    return pool


def test_exactly_k_distinct_prompts_per_clip():
    torch.manual_seed(0)
    pool = PromptPool(8, 5, PoolConfig(size=10, length=3, top_k=4))
    out = pool(torch.randn(6, 8), torch.full((6,), 7))
    assert out["indices"].shape == (6, 4)
    assert out["values"].shape == (6, 4, 3, 5)
    assert all(len(set(row.tolist())) == 4 for row in out["indices"])


# q = (1, 0). Cosine prefers the far key on the same axis; L2 and L1 disagree on the two near ones:
#   k0 = (10, 0):    cos 1.000   L2 9.000   L1 9.00
#   k1 = (1.3, 0.3): cos 0.974   L2 0.424   L1 0.60
#   k2 = (1.0, 0.45): cos 0.912  L2 0.450   L1 0.45
KEYS = torch.tensor([[10.0, 0.0], [1.3, 0.3], [1.0, 0.45]])


@pytest.mark.parametrize("fn,expected", [("cosine", 0), ("l2", 1), ("l1", 2)])
def test_query_function_selects_by_its_definition(fn, expected):
    pool = _pool(KEYS, query=fn).eval()
    out = pool(torch.tensor([[1.0, 0.0]]), torch.tensor([1]))
    assert out["indices"].item() == expected


def test_similarity_values():
    q = torch.tensor([[1.0, 0.0]])
    torch.testing.assert_close(similarity(q, KEYS, "l1")[0], torch.tensor([-9.0, -0.6, -0.45]))
    torch.testing.assert_close(similarity(q, KEYS, "l2")[0], -torch.tensor([9.0, 0.18 ** 0.5, 0.45]))


def test_frequency_balancing_steers_away_from_overused_prompt():
    keys = torch.tensor([[1.0, 0.0], [0.95, 0.1], [-1.0, 0.0]])  # prompt 0 nearest, 1 a close second
    pool = _pool(keys, balance=True)
    q = torch.tensor([[1.0, 0.0]])
    pool.counts[1, 0] = 1000  # prompt 0 has been chosen a lot
    pool.train()
    assert pool(q, torch.tensor([1]))["indices"].item() == 1
    pool.eval()  # no balancing at inference: the nearest prompt wins
    assert pool(q, torch.tensor([1]))["indices"].item() == 0


def test_balance_weights_favour_rare_prompts_for_distances_too():
    scores = torch.tensor([[-1.0, -1.1]])  # prompt 0 slightly nearer
    counts = torch.tensor([1000, 0])
    assert balance_scores(scores, counts, "l2").argmax().item() == 1
    assert balance_scores(scores, torch.tensor([0, 0]), "l2").argmax().item() == 0


def test_counts_per_subset_update_only_in_training():
    pool = _pool(KEYS, top_k=2)
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    pool.eval()
    pool(q, torch.tensor([1, 5]))
    assert pool.counts.sum() == 0
    pool.train()
    pool(q, torch.tensor([1, 5]))
    assert pool.counts[1].sum() == 2 and pool.counts[5].sum() == 2 and pool.counts.sum() == 4


def test_stage2_transfer_keeps_exactly_the_used_prompts():
    torch.manual_seed(0)
    old = PromptPool(4, 3, PoolConfig(size=6, length=2, top_k=2))
    new = PromptPool(4, 3, PoolConfig(size=5, length=2, top_k=2))
    old.counts[1, 4] = 7   # most used
    old.counts[4, 1] = 2
    old.counts[2, 1] = 1   # prompt 1 used by two subsets: 3 in all
    fresh_tail = new.keys[2:].detach().clone()
    kept = transfer_activated(old, new)
    assert kept == [4, 1]
    torch.testing.assert_close(new.keys[:2], old.keys[[4, 1]])
    torch.testing.assert_close(new.values[:2], old.values[[4, 1]])
    torch.testing.assert_close(new.keys[2:], fresh_tail)  # the rest: new initialisation
    assert new.counts.sum() == 0


def test_stage2_transfer_truncates_to_new_size_and_checks_length():
    old = PromptPool(4, 3, PoolConfig(size=6, length=2, top_k=2))
    old.counts[1] = torch.tensor([5, 4, 3, 2, 1, 0])
    small = PromptPool(4, 3, PoolConfig(size=3, length=2, top_k=2))
    assert transfer_activated(old, small) == [0, 1, 2]
    with pytest.raises(ValueError, match="pool.length"):
        transfer_activated(old, PromptPool(4, 3, PoolConfig(size=6, length=5, top_k=2)))


def test_query_is_each_clips_own_feature():
    # Selection of a clip must not change when the other clips of the batch change.
    torch.manual_seed(0)
    pool = PromptPool(8, 5, PoolConfig(size=10, length=3, top_k=3)).eval()
    q = torch.randn(4, 8)
    first = pool(q, torch.full((4,), 7))["indices"][0]
    q2 = q.clone()
    q2[1:] = torch.randn(3, 8) * 10
    assert torch.equal(pool(q2, torch.full((4,), 7))["indices"][0], first)
