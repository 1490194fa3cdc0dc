"""Checkpoint folders: identical logits after a round trip, strict and atomic."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.model.conftest import SUBSETS, random_batch
from umbenet_cli.model import CheckpointError, UMBEnet, load_weights, save_checkpoint


def _trained(make_model):
    model = make_model().train()
    batch = random_batch(model, SUBSETS)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # move weights and selection counts away from their initial values
        opt.zero_grad()
        model.loss(model(batch), torch.arange(7)).total.backward()
        opt.step()
    return model.eval(), batch


def test_round_trip_gives_identical_logits(make_model, backbone, tmp_path):
    model, batch = _trained(make_model)
    folder = model.save(tmp_path / "ckpt", extra={"epoch": 3})
    assert sorted(p.name for p in folder.iterdir()) == ["COMPLETE", "config.json", "meta.json", "model.safetensors"]
    assert not any(k.startswith("backbone.") for k in load_file(str(folder / "model.safetensors")))
    loaded = UMBEnet.load(folder, backbone=backbone).eval()
    assert loaded.config == model.config
    assert torch.equal(loaded.pool.counts, model.pool.counts)
    with torch.no_grad():
        assert torch.equal(loaded(batch).logits, model(batch).logits)


def test_load_rebuilds_backbone_from_config(make_model, tmp_path):
    model, batch = _trained(make_model)
    loaded = UMBEnet.load(model.save(tmp_path / "c")).eval()  # loads the tiny backbone by its id
    with torch.no_grad():
        assert torch.equal(loaded(batch).logits, model(batch).logits)


def test_loading_into_another_config_fails_clearly(make_model, tmp_path):
    model, _ = _trained(make_model)
    folder = model.save(tmp_path / "c")
    other = make_model(**{"pool.size": 8})
    with pytest.raises(CheckpointError) as err:
        load_weights(other, folder)
    msg = str(err.value)
    assert "pool.size: 6 != 8" in msg and "shape mismatches" in msg and "UMBEnet.load" in msg


def test_strict_load_reports_missing_and_unexpected_keys(make_model, tmp_path):
    model, _ = _trained(make_model)
    folder = model.save(tmp_path / "c")
    tensors = load_file(str(folder / "model.safetensors"))
    tensors.pop("sff.w1.weight")
    tensors["stray.weight"] = torch.zeros(1)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys: \['sff.w1.weight'\][\s\S]*unexpected keys: \['stray.weight'\]"):
        load_weights(make_model(), folder)


def test_interrupted_save_keeps_previous_checkpoint(make_model, tmp_path):
    model, batch = _trained(make_model)
    folder = model.save(tmp_path / "last")
    before = (folder / "model.safetensors").read_bytes()

    def crash(tmp):
        raise KeyboardInterrupt  # a kill in the middle of writing the optimiser state

    with torch.no_grad():
        model.pool.keys.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, folder, write_extra=crash)
    assert (folder / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last"]  # no temporary folder left behind


def test_folder_without_marker_is_not_loaded(make_model, tmp_path):
    model, _ = _trained(make_model)
    folder = model.save(tmp_path / "c")
    (folder / "COMPLETE").unlink()
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        UMBEnet.load(folder)
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        UMBEnet.load(tmp_path / "absent")
