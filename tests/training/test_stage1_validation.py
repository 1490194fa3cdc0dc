"""Stage 1 validates as it trains: each validation clip with each of its modalities alone, the best
checkpoint chosen on the mean of the per-modality UARs, the schedule on the mean of their losses."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from umbenet_cli.data.cache_read import read_features
from umbenet_cli.model import UMBEnet, UMBEnetConfig
from umbenet_cli.training import loop
from umbenet_cli.training.data import make_splits
from umbenet_cli.training.distributed import DistInfo


def stage1(cache, folder, rule: str) -> loop.StageTrainer:
    table = read_features(cache)
    cfg = UMBEnetConfig.preset("tiny", classes=list(table.spec.classes), **{
        "optim.stage1_val": rule, "optim.max_epochs": 2, "optim.stop_train_accuracy": 1.0})
    return loop.StageTrainer(UMBEnet(cfg), table, make_splits(table, 1, 0.1, 0), table.presence, "unimodal",
                             "stage1", folder, 0, DistInfo(device=torch.device("cpu")))


# Which validation passes predict every clip right, per epoch (else every clip wrong). The two
# rules disagree: epoch 1 is right with all modalities together and wrong with each alone; epoch 2
# the other way round, except audio alone (so the unimodal mean is 2/3).
RIGHT = {0: {"all"}, 1: {"video", "text"}}


@pytest.mark.parametrize("rule, best_epoch", [("unimodal", 2), ("all", 1)])
def test_stage1_best_checkpoint_follows_the_validation_rule(synthetic_cache, tmp_path, monkeypatch, rule, best_epoch):
    t = stage1(synthetic_cache, tmp_path, rule)
    seen = []

    def scripted(model, table, rows, present, device, batch_size):
        shown = present.sum(0)
        which = "all" if (present.sum(1) > 1).any() else ("video", "audio", "text")[int(np.argmax(shown))]
        seen.append((t.state.epoch, which, present.sum(1).max()))
        labels = table.labels[rows].astype(np.int64)
        C = len(table.spec.classes)
        pred = labels if which in RIGHT[t.state.epoch] else (labels + 1) % C
        return 10.0 * np.eye(C, dtype=np.float32)[pred], np.zeros((len(rows), 1), np.int64)

    monkeypatch.setattr(loop, "predict_rows", scripted)
    plateau = []
    step = type(t.sched).step
    monkeypatch.setattr(type(t.sched), "step", lambda self, metric: (plateau.append(metric), step(self, metric))[1])
    result = t.run()

    assert result["best_epoch"] == best_epoch and result["val_rule"] == rule
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = lines[1]["val"]
    if rule == "unimodal":
        assert {w for _, w, _ in seen} == {"video", "audio", "text"} and all(n == 1 for *_, n in seen)
        per = val["per_modality"]
        assert [per[m]["uar"] for m in ("video", "audio", "text")] == [1.0, 0.0, 1.0]
        assert val["uar"] == pytest.approx(2 / 3) and result["best_val_uar"] == pytest.approx(2 / 3)
        assert plateau[1] == pytest.approx(np.mean([per[m]["loss"] for m in per]))
        assert "each of its modalities alone" in result["val_rule_detail"]
    else:
        assert {w for _, w, _ in seen} == {"all"} and "per_modality" not in val
        assert result["best_val_uar"] == 1.0 and plateau[1] == val["loss"]


def test_only_the_unimodal_stage_validates_per_modality(synthetic_cache, tmp_path):
    t = stage1(synthetic_cache, tmp_path, "unimodal")
    assert t.val_rule == "unimodal"
    other = loop.StageTrainer(t.model, t.table, t.splits, t.available, "subsets", "stage2", tmp_path, 0,
                              DistInfo(device=torch.device("cpu")))
    assert other.val_rule == "all"
