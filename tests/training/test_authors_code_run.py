"""The authors-code preset trains, evaluates and predicts (tiny backbone, sample data), and its
frozen keys stay out of the optimiser."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from umbenet_cli.cli import main
from umbenet_cli.data.cache_read import read_features
from umbenet_cli.model import UMBEnet, UMBEnetConfig
from umbenet_cli.training import loop
from umbenet_cli.training.data import make_splits
from umbenet_cli.training.distributed import DistInfo

SAMPLE_CLIP = Path(__file__).resolve().parents[2] / "sample_data" / "mafw" / "clips" / "00001.mp4"


@pytest.mark.parametrize("train_keys", [False, True])
def test_frozen_keys_stay_out_of_the_optimiser_and_weight_decay(synthetic_cache, tmp_path, train_keys):
    table = read_features(synthetic_cache)
    cfg = UMBEnetConfig.preset("tiny", classes=list(table.spec.classes), **{
        "pool.train_keys": train_keys, "pool.key_loss_weight": 0.0, "optim.weight_decay": 0.1})
    model = UMBEnet(cfg)
    t = loop.StageTrainer(model, table, make_splits(table, 1, 0.1, 0), table.presence, "subsets", "onestage",
                          tmp_path, 0, DistInfo(device=torch.device("cpu")))
    keys, values = model.pool.keys.detach().clone(), model.pool.values.detach().clone()
    rows = t.splits.train[:4]
    t._step(rows, t.available[rows])
    in_opt = any(p is model.pool.keys for g in t.opt.param_groups for p in g["params"])
    assert in_opt == train_keys
    # Without a key-matching term keys get a zero gradient, so only weight decay could move them.
    assert torch.equal(model.pool.keys, keys) != train_keys
    assert not torch.equal(model.pool.values, values)


def test_authors_code_preset_trains_evaluates_and_predicts(sample_cache, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "--cache", str(sample_cache), "--runs-dir", str(runs), "--name", "ac", "--fold", "1",
                 "--preset", "authors-code", "--set", "backbone=umbenet/tiny-random-clip", "--set", "num_frames=4",
                 "--set", "audio.seconds=2", "--stage", "both", "--max-steps", "2"]) == 0
    run = runs / "ac"
    saved = UMBEnet.load(run / "fold1" / "stage2" / "checkpoints" / "best").config
    assert (saved.pool.query_scope, saved.pool.train_keys, saved.sff.gate, saved.sff.combine) == (
        "batch", False, "scalar", "sum")
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    assert "depends on the other clips of its batch" in " ".join(capsys.readouterr().out.split())
    results = json.loads((run / "fold1" / "stage2" / "eval" / "test" / "results.json").read_text())
    assert "batch mean of F_fusion" in results["rules"]["batch_query"]
    out = tmp_path / "pred.json"
    assert main(["predict", str(SAMPLE_CLIP), "--run", str(run), "--no-asr", "--json", str(out)]) == 0
    pred = json.loads(out.read_text())
    assert pred["videos"][0]["status"] == "ok" and len(pred["videos"][0]["selected_prompts"]) == 5
    assert "depends on the other clips of its batch" in pred["batch_query"]
