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
from umbenet_cli.training.options import TrainOptions
from umbenet_cli.training.two_stage import (activated, build_stage_model, make_scheduler, stop_reason,
                                             transfer_warning)

# A realistic pool: the paper's N 32, k 5, batch 16 (tiny widths).
POOL = ["--set", "pool.size=32", "--set", "pool.top_k=5", "--set", "optim.batch_size=16"]


def train(cache, runs, *extra):
    return main(["train", "--cache", str(cache), "--runs-dir", str(runs), "--preset", "tiny", *extra])


# ------------------------------------------------------------------------------- activation
def test_activation_is_a_share_above_uniform_per_modality():
    counts = torch.zeros(8, 4, dtype=torch.long)
    counts[1] = torch.tensor([10, 10, 10, 10])  # video: uniform use, nothing stands out
    counts[2] = torch.tensor([0, 1, 0, 30])      # audio: prompt 3 (prompt 1 touched once)
    counts[4] = torch.tensor([5, 0, 2, 0])       # text (7 selections): prompt 0, and prompt 2 (2 * 4 > 7)
    assert activated(counts).tolist() == [True, False, True, True]
    counts[4] = torch.tensor([6, 0, 1, 0])       # prompt 2: 1 * 4 = 4 < 7
    assert activated(counts).tolist() == [True, False, False, True]
    assert not activated(torch.zeros(8, 4, dtype=torch.long)).any()


@pytest.mark.parametrize("balance", ["false", "true"])
def test_stage2_starts_from_what_stage1_activated(synthetic_cache, tmp_path, capsys, balance):
    """N 32, k 5, batch 16, a few dozen stage-1 steps on a learnable cache: stage 2's pool holds
    some carried prompts (stage 1's trained keys and values) and some fresh ones (neither)."""
    sets = [*POOL, "--set", f"pool.balance={balance}", "--set", "optim.stop_train_accuracy=1.0"]
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

    # "Activated" is read from the counts made without the balancing factor.
    counts = best["pool.query_counts"] if balance == "true" else best["pool.counts"]
    if balance == "true":  # the balanced counts alone would have carried the whole pool
        assert activated(torch.from_numpy(best["pool.counts"])).all()
    assert sorted(kept) == np.flatnonzero(activated(torch.from_numpy(counts)).numpy()).tolist()
    names = {1: "V", 2: "A", 4: "T"}
    for d in init["carried_detail"]:
        assert d["stage1_counts"] == {names[c]: int(counts[c, d["stage1_prompt"]])
                                      for c in (1, 2, 4) if counts[c, d["stage1_prompt"]]}

    opts = TrainOptions.from_json((tmp_path / "s2" / "run.json").read_text())
    model, record = build_stage_model(opts, "stage2", 1, load_backbone(opts.model.backbone))
    assert record["prompts_carried"] == kept
    keys, values = model.pool.keys.detach().numpy(), model.pool.values.detach().numpy()
    np.testing.assert_array_equal(keys[:n], best["pool.keys"][kept])
    np.testing.assert_array_equal(values[:n], best["pool.values"][kept])
    for fresh_key, fresh_value in zip(keys[n:], values[n:]):  # no stage-1 prompt, trained or not
        assert np.abs(best["pool.keys"] - fresh_key).max(axis=1).min() > 1e-3
        assert np.abs(best["pool.values"] - fresh_value).reshape(32, -1).max(axis=1).min() > 1e-3
    assert int(model.pool.counts.sum()) == 0


def test_a_transfer_of_none_is_a_warning(synthetic_cache, tmp_path, capsys):
    # A pool of 2 with top-2: every clip selects both prompts, so no prompt takes more than a
    # uniform share of any modality's selections: nothing is carried.
    sets = ["--set", "pool.size=2", "--set", "pool.top_k=2"]
    assert train(synthetic_cache, tmp_path, "--name", "r", "--fold", "1", "--stage", "both",
                 "--max-steps", "2", *sets) == 0
    out = capsys.readouterr().err
    assert "warning" in out and "carried none of stage 1's 2 prompts" in out and "0 / 2 (!)" in out


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
