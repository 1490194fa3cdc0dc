"""train_state.pt: loaded onto this rank's device, tensors and plain values only, GPU RNG kept."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from umbenet_cli.cli import main
from umbenet_cli.data.cache_read import read_features
from umbenet_cli.model import UMBEnet, UMBEnetConfig
from umbenet_cli.training import loop
from umbenet_cli.training.data import make_splits
from umbenet_cli.training.distributed import DistInfo


def trainer(cache, folder, device=torch.device("cpu")) -> loop.StageTrainer:
    table = read_features(cache)
    model = UMBEnet(UMBEnetConfig.preset("tiny", classes=list(table.spec.classes)))
    splits = make_splits(table, 1, 0.1, 0)
    return loop.StageTrainer(model, table, splits, table.presence, "subsets", "onestage", folder, 0,
                             DistInfo(device=device))


class RunsCode:
    """Unpickling this would create ``marker``: proof that loading ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickled_callable_is_refused(synthetic_cache, tmp_path, capsys):
    args = ["train", "--cache", str(synthetic_cache), "--runs-dir", str(tmp_path), "--preset", "tiny", "--name", "r",
            "--fold", "1", "--stage", "one", "--max-steps", "1"]
    assert main(args) == 0
    last = tmp_path / "r" / "fold1" / "onestage" / "checkpoints" / "last"
    state = torch.load(last / "train_state.pt", weights_only=True)
    (tmp_path / "r" / "fold1" / "onestage" / "result.json").unlink()  # so --resume reloads the state
    marker = tmp_path / "ran"
    state["hook"] = RunsCode(marker)
    torch.save(state, last / "train_state.pt")
    assert main(["train", "--runs-dir", str(tmp_path), "--name", "r", "--cache", str(synthetic_cache), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "train_state.pt holds more than tensors and plain values" in err and "refused" in err
    assert not marker.exists() and "Traceback" not in err


def test_state_is_mapped_to_this_ranks_device(synthetic_cache, tmp_path, monkeypatch):
    t = trainer(synthetic_cache, tmp_path)
    t._step(t.splits.train[:4], t.available[t.splits.train[:4]])  # optimiser state exists
    t._save("last")
    seen = {}
    real = torch.load

    def spy(*a, **k):
        seen.update(k)
        return real(*a, **k)

    monkeypatch.setattr(torch, "load", spy)
    assert t.resume()
    assert seen["map_location"] == torch.device("cpu") and seen["weights_only"] is True
    # The same file onto another device: every tensor lands there (meta stands in for cuda:1).
    st = loop.load_train_state(tmp_path / "checkpoints" / "last" / "train_state.pt", torch.device("meta"))
    assert st["torch_rng"].device.type == "meta"
    assert all(v.device.type == "meta" for s in st["opt"]["state"].values() for v in s.values() if torch.is_tensor(v))


def test_cuda_rng_state_saved_and_restored(synthetic_cache, tmp_path, monkeypatch):
    """On a GPU the dropout RNG is the GPU's: it travels in the checkpoint (torch.cuda patched)."""
    gpu_rng = {"state": torch.arange(16, dtype=torch.uint8)}
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": gpu_rng["state"].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device="cuda": gpu_rng.update(state=s.clone(), device=device))
    cuda0 = torch.device("cuda", 0)
    t = trainer(synthetic_cache, tmp_path, device=cuda0)  # the model stays on the CPU: only the RNG path runs
    t._save("last")
    saved = torch.load(tmp_path / "checkpoints" / "last" / "train_state.pt", weights_only=True)
    assert torch.equal(saved["cuda_rng"], torch.arange(16, dtype=torch.uint8))
    gpu_rng["state"] = torch.zeros(16, dtype=torch.uint8)  # the GPU generator moved on
    real = loop.load_train_state
    monkeypatch.setattr(loop, "load_train_state", lambda path, device: real(path, torch.device("cpu")))
    monkeypatch.setattr(loop, "load_weights", lambda *a, **k: None)
    assert t.resume()
    assert torch.equal(gpu_rng["state"], torch.arange(16, dtype=torch.uint8)) and gpu_rng["device"] == cuda0
