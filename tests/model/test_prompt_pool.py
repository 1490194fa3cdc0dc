"""Prompt pool: top-k per clip, query functions, frequency balancing, stage-2 transfer."""
from __future__ import annotations

import pytest
import torch

from umbenet_cli.model.config import PoolConfig
from umbenet_cli.model.prompt_pool import PromptPool, balance_scores, key_distance, similarity
from umbenet_cli.training.two_stage import Selections, transfer_activated


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


def test_stage2_transfer_keeps_exactly_the_activated_prompts():
    torch.manual_seed(0)
    old = PromptPool(4, 3, PoolConfig(size=6, length=2, top_k=2))
    new = PromptPool(4, 3, PoolConfig(size=5, length=2, top_k=2))
    counts = torch.zeros(8, 6, dtype=torch.long)
    counts[1, 4] = 7   # most used
    counts[4, 1] = 2
    counts[2, 1] = 1   # prompt 1 used by two modalities: 3 in all
    fresh_tail = new.keys[2:].detach().clone()
    kept = transfer_activated(old, new, seen(counts), rule="any", alpha=0.01)
    assert kept == [4, 1]
    torch.testing.assert_close(new.keys[:2], old.keys[[4, 1]])
    torch.testing.assert_close(new.values[:2], old.values[[4, 1]])
    torch.testing.assert_close(new.keys[2:], fresh_tail)  # the rest: new initialisation
    assert new.counts.sum() == 0


def test_stage2_transfer_truncates_to_new_size_and_checks_length():
    old = PromptPool(4, 3, PoolConfig(size=6, length=2, top_k=2))
    counts = torch.zeros(8, 6, dtype=torch.long)
    counts[1, 0], counts[2, 1], counts[4, 2], counts[4, 3] = 5, 4, 3, 2  # 4 activated
    counts[3, 5] = 9  # a V+A presentation: not a modality alone, so it activates nothing
    small = PromptPool(4, 3, PoolConfig(size=3, length=2, top_k=2))
    assert transfer_activated(old, small, seen(counts), rule="any", alpha=0.01) == [0, 1, 2]
    with pytest.raises(ValueError, match="pool.length"):
        transfer_activated(old, PromptPool(4, 3, PoolConfig(size=6, length=5, top_k=2)), seen(counts), "any", 0.01)


def seen(counts: torch.Tensor) -> Selections:
    """A counting pass that saw ``counts`` with per-clip queries."""
    return Selections(counts, counts, counts.sum(1) // 2)


def test_query_is_each_clips_own_feature():
    # Selection of a clip must not change when the other clips of the batch change.
    torch.manual_seed(0)
    pool = PromptPool(8, 5, PoolConfig(size=10, length=3, top_k=3)).eval()
    q = torch.randn(4, 8)
    first = pool(q, torch.full((4,), 7))["indices"][0]
    q2 = q.clone()
    q2[1:] = torch.randn(3, 8) * 10
    assert torch.equal(pool(q2, torch.full((4,), 7))["indices"][0], first)


def _own_distance(q, keys, fn):
    """Distances [B, N] computed by hand from each function's definition (Fig. 4)."""
    d = q[:, None, :] - keys[None]
    if fn == "l2":
        return (d ** 2).sum(-1).sqrt()
    if fn == "l1":
        return d.abs().sum(-1)
    return 1 - (q @ keys.T) / (q.norm(dim=-1)[:, None] * keys.norm(dim=-1)[None])


@pytest.mark.parametrize("fn", ["cosine", "l2", "l1"])
def test_after_training_each_query_function_selects_the_nearest_key_by_its_own_definition(fn):
    # Two groups of unit-norm queries (F_fusion has unit norm) in 64 dimensions. Keys trained under
    # the same function follow the queries: each group ends with its own nearby keys. With keys
    # drawn from U(-1, 1) (norm ~4.6 here, ~13 at 512) and a cosine key loss, L2 / L1 selection
    # followed the key norms: both groups picked the same shortest keys, and kept them.
    torch.manual_seed(0)
    D = 64
    centres = torch.nn.functional.normalize(torch.randn(2, D), dim=-1)
    q = torch.nn.functional.normalize(centres.repeat_interleave(8, 0) + 0.2 * torch.randn(16, D) / D ** 0.5, dim=-1)
    pool = PromptPool(D, 3, PoolConfig(size=8, length=2, top_k=1, query=fn)).train()
    opt = torch.optim.Adam(pool.parameters(), lr=0.02)
    for _ in range(40):
        out = pool(q, torch.full((16,), 7))
        opt.zero_grad()
        out["key_loss"].backward()
        opt.step()
    pool.eval()
    picked = pool(q, torch.full((16,), 7))["indices"][:, 0]
    with torch.no_grad():
        own = _own_distance(q, pool.keys, fn)
        torch.testing.assert_close(key_distance(q, pool.keys[None].expand(16, -1, -1), fn), own)
    assert torch.equal(picked, own.argmin(1))  # selection = nearest key by the function's definition
    a, b = set(picked[:8].tolist()), set(picked[8:].tolist())
    assert not a & b  # each group has its own keys: selection follows the query
    near = own.gather(1, picked[:, None])[:, 0]
    far = own[:8][:, sorted(b)].min(1).values  # group A's distance to group B's keys
    assert (near[:8] < 0.5 * far).all()  # pulled close under the function's own distance


def test_balanced_selection_keeps_the_querys_own_choices_apart():
    keys = torch.tensor([[1.0, 0.0], [0.95, 0.1], [-1.0, 0.0]])
    pool = _pool(keys, balance=True)
    pool.counts[1, 0] = 1000  # balancing steers this clip to prompt 1 ...
    pool.train()
    assert pool(torch.tensor([[1.0, 0.0]]), torch.tensor([1]))["indices"].item() == 1
    assert pool.counts[1, 1] == 1 and pool.query_counts[1, 0] == 1  # ... its query chose prompt 0
    assert not hasattr(_pool(keys, balance=False), "query_counts")


def test_checkpoint_saved_before_query_counts_loads(tmp_path, make_model):
    from safetensors.torch import load_file, save_file

    from umbenet_cli.model import UMBEnet

    model = make_model(**{"pool.balance": True})
    model.pool.counts[1, 2] = 5
    folder = model.save(tmp_path / "ckpt")
    tensors = load_file(str(folder / "model.safetensors"))
    del tensors["pool.query_counts"]  # as an earlier version wrote it
    save_file(tensors, str(folder / "model.safetensors"))
    loaded = UMBEnet.load(folder, backbone=model.backbone)
    assert loaded.pool.query_counts[1, 2] == 5
