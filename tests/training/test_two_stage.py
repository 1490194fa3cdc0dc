"""Section 3.4 as written: the stage-2 transfer carries what stage 1 activated, the schedule's
epoch of the first cut, and the two early stops."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from umbenet_cli.cli import main
from umbenet_cli.model import load_backbone
from umbenet_cli.model.config import OptimConfig
from umbenet_cli.training.distributed import DistInfo
from umbenet_cli.training.options import TrainOptions
from umbenet_cli.training.run import available_modalities
from umbenet_cli.training.two_stage import (activated, build_stage_model, make_scheduler, stop_reason,
                                             transfer_warning)

# A realistic pool: the paper's N 32, k 5, batch 16 (tiny widths).
POOL = ["--set", "pool.size=32", "--set", "pool.top_k=5", "--set", "optim.batch_size=16"]


def train(cache, runs, *extra):
    return main(["train", "--cache", str(cache), "--runs-dir", str(runs), "--preset", "tiny", *extra])


# ------------------------------------------------------------------------------- activation
N, K, CLIPS = 32, 5, 150  # the paper's pool (N 32, top-5) and 150 clips per modality


def uniform_counts(rng: np.random.Generator, planted: dict[int, list[int]] | None = None,
                   share: float = 0.8) -> torch.Tensor:
    """[8, N] selections of a query without preference: each clip of V (1), A (2) and T (4)
    picks K distinct prompts uniformly. ``planted``: for these modalities, each of a clip's K
    picks comes from the listed prompts with probability ``share`` (else from the others)."""
    counts = torch.zeros(8, N, dtype=torch.long)
    for code in (1, 2, 4):
        favoured = (planted or {}).get(code)
        for _ in range(CLIPS):
            if favoured is None:
                picks = rng.choice(N, K, replace=False)
            else:
                others = np.setdiff1d(np.arange(N), favoured)
                n_fav = rng.binomial(K, share)
                picks = np.concatenate([rng.choice(favoured, min(n_fav, len(favoured)), replace=False),
                                        rng.choice(others, K - min(n_fav, len(favoured)), replace=False)])
            counts[code, picks] += 1
    return counts


def test_significant_rule_carries_nothing_from_noise():
    """The null test: uniform random selection, 200 draws. The rule this replaces
    (above_uniform) carries most of the pool from the same noise."""
    rng = np.random.default_rng(11)
    draws = [uniform_counts(rng) for _ in range(200)]
    significant = [int(activated(c, top_k=K).sum()) for c in draws]
    assert np.mean(significant) <= 1.0
    assert np.mean([int(activated(c, top_k=K, rule="above_uniform").sum()) for c in draws]) > 20


@pytest.mark.parametrize("code", [1, 2, 4])
def test_significant_rule_finds_exactly_a_planted_preference(code):
    """Five prompts take 80% of one modality's selections: those five are carried, and only
    they, in at least 19 of 20 draws."""
    rng = np.random.default_rng(code)
    planted = [3, 9, 17, 22, 30]
    hits = 0
    for _ in range(20):
        got = np.flatnonzero(activated(uniform_counts(rng, {code: planted}), top_k=K).numpy()).tolist()
        hits += got == planted
    assert hits >= 19


def test_binomial_tail_is_exact():
    from math import comb

    from umbenet_cli.training.two_stage import binomial_tail

    n, p = 40, 5 / 32
    for c in (0, 1, 6, 12, 40):
        want = sum(comb(n, x) * p ** x * (1 - p) ** (n - x) for x in range(c, n + 1))
        assert float(binomial_tail(torch.tensor([c]), torch.tensor(n), p)[0]) == pytest.approx(want, rel=1e-9)


def test_the_other_rules_do_what_they_say():
    counts = torch.zeros(8, 6, dtype=torch.long)
    counts[1] = torch.tensor([10, 10, 10, 10, 0, 0])  # video, k=2: 20 clips
    counts[2] = torch.tensor([0, 1, 0, 9, 0, 0])       # audio: 5 clips
    counts[4] = torch.tensor([2, 0, 0, 0, 0, 0])       # text
    assert activated(counts, top_k=2, rule="any").tolist() == [True, True, True, True, False, False]
    assert activated(counts, top_k=2, rule="all").tolist() == [True] * 6
    assert activated(counts, top_k=2, rule="none").tolist() == [False] * 6
    # top: video's two most selected (ties: lowest index), audio's 3 and 1, text's 0.
    assert activated(counts, top_k=2, rule="top").tolist() == [True, True, False, True, False, False]
    # above_uniform (count > total / N): video 10 * 6 > 40 for 0-3; audio 9 * 6 > 10 for 3 only.
    assert activated(counts, top_k=2, rule="above_uniform").tolist() == [True, True, True, True, False, False]
    assert not activated(torch.zeros(8, 6, dtype=torch.long), top_k=2, rule="any").any()
    with pytest.raises(ValueError, match="available"):
        activated(counts, top_k=2, rule="most")


def test_a_saved_config_without_the_rule_keeps_the_rule_it_ran_with():
    from umbenet_cli.model.config import UMBEnetConfig

    saved = UMBEnetConfig.preset("tiny").to_dict()
    del saved["pool"]["transfer"]
    assert UMBEnetConfig.from_saved(saved).pool.transfer == "above_uniform"
    assert UMBEnetConfig.preset("tiny").pool.transfer == "significant"


def test_stage2_starts_from_what_the_trained_stage1_model_selects(synthetic_cache, tmp_path, capsys):
    """N 32, k 5, batch 16, a few dozen stage-1 steps on a learnable cache: the counting pass runs
    the trained stage-1 model on this run's training clips, each modality alone; stage 2's pool
    holds the prompts it selects more than chance (keys and values from stage 1) and fresh ones."""
    sets = [*POOL, "--set", "optim.stop_train_accuracy=1.0"]
    assert train(synthetic_cache, tmp_path, "--name", "s1", "--fold", "1", "--stage", "1",
                 "--max-steps", "30", *sets) == 0
    best = load_file(str(tmp_path / "s1" / "fold1" / "stage1" / "checkpoints" / "best" / "model.safetensors"))
    capsys.readouterr()
    assert train(synthetic_cache, tmp_path, "--name", "s2", "--fold", "1", "--stage", "2", "--init-from",
                 str(tmp_path / "s1"), "--max-steps", "1", *sets) == 0
    out = capsys.readouterr().err
    init = json.loads((tmp_path / "s2" / "fold1" / "stage2" / "init.json").read_text())
    n, kept = init["carried"], init["prompts_carried"]
    assert 0 < n < 32 and init["fresh"] == 32 - n and len(kept) == n
    assert f"carried {n} of stage 1's 32 prompts" in out and f"{n} / {32 - n}" in out and "warning" not in out
    assert init["rule"] == "significant" and init["alpha"] == 0.01

    # Counted: every training clip of fold 1, once per modality it has; never validation or test.
    opts = TrainOptions.from_json((tmp_path / "s2" / "run.json").read_text())
    from umbenet_cli.data.cache_read import read_features
    from umbenet_cli.training.data import make_splits

    table = read_features(opts.cache)
    splits = make_splits(table, 1, opts.val_fraction, opts.seed)
    for m, j in (("V", 0), ("A", 1), ("T", 2)):
        assert init["counted_clips"][m] == int(table.presence[splits.train, j].sum())
        assert init["stage1_selections"][m] == 5 * init["counted_clips"][m]
        assert sum(init["stage1_counts"][m]) == init["stage1_selections"][m]
    # Every carried prompt passed the test for some modality; no fresh one did.
    threshold = init["threshold"]
    assert threshold == pytest.approx(0.01 / (3 * 32))
    for d in init["carried_detail"]:
        assert min(d["p_values"].values()) <= threshold
        assert d["stage1_counts"] == {m: init["stage1_counts"][m][d["stage1_prompt"]]
                                      for m in "VAT" if init["stage1_counts"][m][d["stage1_prompt"]]}
    for j in set(range(32)) - set(kept):
        assert min(init["stage1_p_values"][m][j] for m in "VAT") > threshold

    model, record = build_stage_model(opts, "stage2", 1, load_backbone(opts.model.backbone), table,
                                      splits.train, available_modalities(table, opts), DistInfo())
    assert record["prompts_carried"] == kept
    keys, values = model.pool.keys.detach().numpy(), model.pool.values.detach().numpy()
    np.testing.assert_array_equal(keys[:n], best["pool.keys"][kept])
    np.testing.assert_array_equal(values[:n], best["pool.values"][kept])
    for fresh_key, fresh_value in zip(keys[n:], values[n:]):  # no stage-1 prompt, trained or not
        assert np.abs(best["pool.keys"] - fresh_key).max(axis=1).min() > 1e-3
        assert np.abs(best["pool.values"] - fresh_value).reshape(32, -1).max(axis=1).min() > 1e-3
    assert int(model.pool.counts.sum()) == 0

    # After the stage, the same pass on its best checkpoint, alone and together, for the report.
    sel = json.loads((tmp_path / "s2" / "fold1" / "stage2" / "selection.json").read_text())
    assert sel["counted_clips"]["V"] == init["counted_clips"]["V"]
    assert sum(sel["counted_clips"][s] for s in sel["counted_clips"] if "+" in s or len(s) == 1) >= len(splits.train)
    assert all(len(row) == 32 and sum(row) == 5 * sel["counted_clips"][s] for s, row in sel["counts"].items())


@pytest.mark.parametrize("rule,carried", [("all", 32), ("none", 0)])
def test_carry_all_and_carry_none_are_ablation_arms_without_a_warning(synthetic_cache, tmp_path, capsys, rule, carried):
    assert train(synthetic_cache, tmp_path, "--name", "r", "--fold", "1", "--stage", "both", "--max-steps", "2",
                 *POOL, "--set", f"pool.transfer={rule}") == 0
    init = json.loads((tmp_path / "r" / "fold1" / "stage2" / "init.json").read_text())
    assert init["carried"] == carried and init["rule"] == rule
    assert "warning" not in capsys.readouterr().err


def test_a_transfer_of_none_is_a_warning(synthetic_cache, tmp_path, capsys):
    # A pool of 2 with top-2: every clip selects both prompts, which is what uniform selection
    # gives too: no prompt is selected more than chance, nothing is carried.
    sets = ["--set", "pool.size=2", "--set", "pool.top_k=2"]
    assert train(synthetic_cache, tmp_path, "--name", "r", "--fold", "1", "--stage", "both",
                 "--max-steps", "2", *sets) == 0
    out = capsys.readouterr().err
    assert "warning" in out and "carried none of stage 1's 2 prompts" in out and "0 / 2 (!)" in out
    assert "'significant'" in out


def test_a_transfer_of_all_is_a_warning():
    record = {"carried": 8, "fresh": 0, "stage1_pool_size": 8}
    assert "carried all 8" in transfer_warning(record)
    assert transfer_warning({"carried": 5, "fresh": 3, "stage1_pool_size": 8}) is None


# ---------------------------------------------------------------------------------- schedule
def _cut_epochs(losses: list[float], cfg: OptimConfig) -> list[int]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=cfg.lr)
    sched = make_scheduler(opt, cfg)
    cuts = []
    for epoch, loss in enumerate(losses, start=1):
        before = opt.param_groups[0]["lr"]
        sched.step(loss)
        if opt.param_groups[0]["lr"] < before:
            cuts.append(epoch)
    return cuts


def test_lr_is_cut_at_the_end_of_the_third_epoch_without_a_decrease():
    cfg = OptimConfig()  # the paper's: x0.6 after 3 epochs without a decrease
    # best at epoch 2; epochs 3, 4, 5 do not go lower -> the cut comes at the end of epoch 5
    # (torch's patience=3 would cut at the end of epoch 6).
    losses = [1.0, 0.8, 0.8, 0.9, 0.85, 0.7, 0.7, 0.7]
    assert _cut_epochs(losses, cfg) == [5]
    # After a cut the count restarts: epoch 6 is a new best, 7 and 8 are bad, 9 is the third.
    assert _cut_epochs(losses + [0.7], cfg) == [5, 9]


def test_authors_code_preset_cuts_after_three_bad_epochs_too():
    from umbenet_cli.model.config import UMBEnetConfig

    cfg = UMBEnetConfig.preset("authors-code").optim
    assert _cut_epochs([1.0, 1.0, 1.0, 1.0, 1.0], cfg) == [4]


def test_plateau_threshold_decides_what_counts_as_a_decrease():
    # Each epoch a little lower: by more than 1e-4 of the best (torch's default, the paper preset),
    # never by 1e-3 of it (the authors' code), so only there are epochs 2-4 bad and the lr is cut.
    losses = [1.0, 0.9996, 0.9993, 0.9991, 0.9990]
    assert _cut_epochs(losses, OptimConfig()) == []
    assert _cut_epochs(losses, OptimConfig(plateau_threshold=1e-3)) == [4]
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    assert make_scheduler(opt, OptimConfig(plateau_threshold=1e-3)).threshold == 1e-3


def test_stop_rules_at_their_thresholds():
    cfg = OptimConfig()
    assert stop_reason(1e-7, 0.5, cfg) is None  # "drops below 1e-7": 1e-7 itself goes on
    assert "below min_lr" in stop_reason(0.99e-7, 0.5, cfg)
    assert stop_reason(2e-3, 0.80, cfg) is None  # "more than 80%"
    assert "passed 0.8" in stop_reason(2e-3, 0.8001, cfg)


def test_training_stops_when_the_lr_falls_below_min_lr(synthetic_cache, tmp_path):
    # Start at 1e-7: one epoch whose validation loss does not go lower cuts it to 6e-8 < 1e-7. With
    # plateau_epochs=1 the first cut comes at the first bad epoch (epoch 2 at the latest, since an
    # lr of 1e-7 barely moves the weights; epoch 1 sets the best).
    assert train(synthetic_cache, tmp_path, "--name", "r", "--fold", "1", "--stage", "one",
                 "--set", "optim.lr=1e-7", "--set", "optim.plateau_epochs=1", "--set", "optim.max_epochs=6",
                 "--set", "optim.stop_train_accuracy=1.0") == 0
    result = json.loads((tmp_path / "r" / "fold1" / "onestage" / "result.json").read_text())
    assert "fell below min_lr=1e-07" in result["stop_reason"] and result["epochs"] < 6
    last = [json.loads(x) for x in (tmp_path / "r" / "fold1" / "onestage" / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["lr"] == pytest.approx(6e-8)


def test_training_stops_when_training_accuracy_passes_the_threshold(synthetic_cache, tmp_path):
    assert train(synthetic_cache, tmp_path, "--name", "r", "--fold", "1", "--stage", "one",
                 "--set", "optim.stop_train_accuracy=0.3", "--set", "optim.max_epochs=6") == 0
    folder = tmp_path / "r" / "fold1" / "onestage"
    result = json.loads((folder / "result.json").read_text())
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert "training accuracy" in result["stop_reason"] and "passed 0.3" in result["stop_reason"]
    assert lines[-1]["train"]["acc"] > 0.3 and all(x["train"]["acc"] <= 0.3 for x in lines[:-1])


# ---------------------------------------------------------------------- the one-stage arms
def test_all_modalities_presents_every_modality_a_clip_has(synthetic_cache, tmp_path):
    from umbenet_cli.training.two_stage import sample_presence, stage_mode

    assert train(synthetic_cache, tmp_path, "--name", "r", "--fold", "1", "--stage", "one", "--all-modalities",
                 "--max-steps", "2") == 0
    opts = TrainOptions.from_json((tmp_path / "r" / "run.json").read_text())
    assert opts.all_modalities and stage_mode("onestage", opts) == "all"
    available = np.array([[True, False, True], [True, True, True]])
    assert (sample_presence(available, stage_mode("onestage", opts), np.random.default_rng(0)) == available).all()
    # Only the one-stage ablation takes it; a resume may not switch it on.
    assert train(synthetic_cache, tmp_path, "--name", "x", "--fold", "1", "--stage", "both", "--all-modalities") == 2
    assert train(synthetic_cache, tmp_path, "--name", "o", "--fold", "1", "--stage", "one", "--max-steps", "1") == 0
    assert train(synthetic_cache, tmp_path, "--name", "o", "--fold", "1", "--stage", "one", "--resume",
                 "--all-modalities") == 2


def test_counting_pass_under_a_batch_query_counts_batches_as_draws(synthetic_cache):
    """pool.query_scope=batch (the authors' code): batches of one modality at the training batch
    size, every clip counting its batch's k, and one independent draw per batch for the test."""
    from umbenet_cli.data.cache_read import read_features
    from umbenet_cli.model.config import UMBEnetConfig
    from umbenet_cli.model.umbenet import UMBEnet
    from umbenet_cli.training.two_stage import count_selections

    cfg = UMBEnetConfig.preset("tiny", **{"pool.size": 32, "pool.top_k": 5, "pool.query_scope": "batch"})
    table = read_features(synthetic_cache)
    rows = np.arange(len(table))
    available = table.presence
    B = 16
    seen = count_selections(UMBEnet(cfg), table, rows, available, DistInfo(), B)
    for code, j in ((1, 0), (2, 1), (4, 2)):
        n = int(available[:, j].sum())
        assert int(seen.clips[code]) == n and int(seen.counts[code].sum()) == 5 * n
        assert int(seen.queries[code].sum()) == 5 * -(-n // B)  # one query per batch
        # Each prompt's clip count is a sum of whole batches: full batches of B and one remainder.
        sizes = {B, n % B or B}
        assert all(any((c - r) % B == 0 for r in (0, *sizes)) for c in seen.counts[code].tolist())
