"""The head ablation (learned class vectors) and the class-embedding diagnostics eval writes."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from umbenet_cli.cli import main
from umbenet_cli.evaluation.head_diagnostics import HeadStats
from umbenet_cli.model.config import ConfigError, UMBEnetConfig
from umbenet_cli.model.umbenet import Batch, UMBEnet


def test_stats_of_known_geometries():
    scale = 10.0
    # Two clips; classes 0 and 1 identical, class 2 orthogonal to them; the same for both clips.
    e = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).unsqueeze(0)
    s = HeadStats()
    s.add(e, torch.tensor([[3.0, 1.0, -2.0], [0.0, 0.5, 0.0]]))
    r = s.result(scale)
    assert r["n_clips"] == 2
    assert r["class_cosine"]["max"] == pytest.approx(1.0) and r["class_cosine"]["min"] == pytest.approx(0.0)
    assert r["class_cosine"]["mean"] == pytest.approx(1 / 3, abs=1e-3)  # pairs (0,1)=1, (0,2)=0, (1,2)=0
    # Pair gaps scale·|e_a - e_b|: 0, sqrt(2)·10, sqrt(2)·10 -> median sqrt(2)·10.
    assert r["logit_range"]["ceiling_median"] == pytest.approx(scale * math.sqrt(2), abs=1e-3)
    assert r["logit_range"]["spread_median"] == pytest.approx(2.75)  # spreads 5 and 0.5
    assert r["across_clips"] == pytest.approx(1.0)  # e_c does not depend on the clip


def test_per_clip_embeddings_lower_across_clips():
    s = HeadStats()
    e = torch.stack([torch.eye(2), torch.eye(2).flip(1)])  # clip 2 swaps the classes' directions
    s.add(e, torch.zeros(2, 2))
    assert s.result(1.0)["across_clips"] == pytest.approx(0.5)  # |e1 + e2|^2 / 4 = 2 / 4


def test_vectors_need_the_pool_off():
    with pytest.raises(ConfigError, match="pool.enabled=false"):
        UMBEnetConfig.preset("tiny", classifier="vectors")
    with pytest.raises(ConfigError, match="classifier='linear'"):
        UMBEnetConfig.preset("tiny", classifier="linear")


def test_learned_vectors_same_cosine_and_scale_no_text_tower():
    torch.manual_seed(0)
    model = UMBEnet(UMBEnetConfig.preset("tiny", classifier="vectors", **{"pool.enabled": False}))
    assert model.class_prompts is None and model.pool is None
    C, E = len(model.config.classes), model.backbone.dims.embed_dim
    B, T = 3, model.config.num_frames
    batch = Batch(present=torch.ones(B, 3, dtype=torch.bool), frame_emb=torch.randn(B, T, E),
                  audio=torch.randn(B, model.audio.num_samples), text_emb=torch.randn(B, E))
    out = model(batch)
    expect = model.backbone.logit_scale() * F.normalize(out.fused, dim=-1) @ F.normalize(model.class_vectors, dim=-1).T
    assert out.logits.shape == (B, C)
    assert torch.allclose(out.logits, expect, atol=1e-5)
    model.loss(out, torch.tensor([0, 1, 2])).total.backward()
    assert model.class_vectors.grad is not None and model.class_vectors.grad.abs().sum() > 0
    # The frozen text tower takes no part: nothing there ever receives a gradient.
    assert all(p.grad is None for p in model.backbone.parameters())
    assert "class_vectors" in model.trainable_state_dict()


@pytest.mark.parametrize("extra", [[], ["--set", "classifier=vectors", "--set", "pool.enabled=false"]],
                         ids=["prompts", "vectors"])
def test_eval_writes_head_json_trained_and_initial(synthetic_cache, tmp_path, extra):
    runs = tmp_path / "runs"
    assert main(["train", "--cache", str(synthetic_cache), "--runs-dir", str(runs), "--preset", "tiny",
                 "--name", "r", "--fold", "1", "--stage", "one", "--max-steps", "6", "--seed", "3", *extra]) == 0
    assert main(["eval", str(runs / "r")]) == 0
    out = runs / "r" / "fold1" / "onestage" / "eval" / "test"
    head = json.loads((out / "head.json").read_text())
    results = json.loads((out / "results.json").read_text())
    full = next(s for s in results["subsets"] if s["name"] == "V+A+T")
    assert head["subset"] == "V+A+T" and head["trained"]["n_clips"] == head["initial"]["n_clips"] == full["n"]
    C = len(results["classes"])
    for which in ("trained", "initial"):
        r = head[which]
        assert len(r["class_cosine"]["matrix"]) == C
        assert -1 <= r["class_cosine"]["min"] <= r["class_cosine"]["mean"] <= r["class_cosine"]["max"] <= 1
        assert 0 <= r["logit_range"]["spread_median"] <= r["logit_range"]["spread_p90"]
    if extra:  # "initial" is the model training started from: the run's seed, its config
        cfg = UMBEnetConfig.from_saved(json.loads((runs / "r" / "run.json").read_text())["model"])
        torch.manual_seed(3)
        start = F.normalize(UMBEnet(cfg).class_vectors, dim=-1)
        got = torch.tensor(head["initial"]["class_cosine"]["matrix"])
        assert torch.allclose(got, (start @ start.T).detach(), atol=1e-3)
        assert head["trained"]["class_cosine"]["matrix"] != head["initial"]["class_cosine"]["matrix"]
        assert head["trained"]["across_clips"] == pytest.approx(1.0)
    else:  # per-clip P': the class embeddings move with the clip
        assert head["trained"]["across_clips"] < 1.0


def test_class_geometry_without_data_and_info_prints_it():
    from typer.testing import CliRunner

    from umbenet_cli.cli import app
    from umbenet_cli.evaluation.head_diagnostics import class_geometry

    torch.manual_seed(1)
    model = UMBEnet(UMBEnetConfig.preset("tiny", classifier="vectors", **{"pool.enabled": False}))
    w = F.normalize(model.class_vectors, dim=-1)
    geo = class_geometry(model)
    cos = (w @ w.T).detach()
    off = ~torch.eye(len(cos), dtype=torch.bool)
    assert geo["class_cosine"]["mean"] == pytest.approx(float(cos[off].mean()), abs=1e-3)
    pairs = (2 - 2 * cos[off]).clamp(min=0).sqrt()
    assert geo["logit_range"]["ceiling_median"] == pytest.approx(geo["logit_scale"] * float(pairs.median()), abs=1e-2)
    # With class prompts and the pool: P' selected by random queries, so e_c varies with the query.
    prompts = class_geometry(UMBEnet(UMBEnetConfig.preset("tiny")))
    assert prompts["across_clips"] < 1.0 and prompts["n_clips"] == 16
    out = CliRunner().invoke(app, ["info", "--preset", "tiny"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "class embeddings as built pairwise cosine mean" in out.output and "logits between two classes" in out.output
