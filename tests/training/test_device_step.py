"""The training step on a device: host syncs counted, uploads pinned and non-blocking, validation
in the precision of eval and predict."""
from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from umbenet_cli.data.cache_read import read_features
from umbenet_cli.evaluation.evaluate import run_subsets
from umbenet_cli.model import UMBEnet, UMBEnetConfig
from umbenet_cli.training import data, loop
from umbenet_cli.training.data import make_splits
from umbenet_cli.training.distributed import DistInfo


class HostSyncs(TorchDispatchMode):
    """Counts reads of a tensor's value by the host (item(), float(), bool(), tolist())."""

    def __init__(self):
        super().__init__()
        self.count, self.paused = 0, False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket is torch.ops.aten._local_scalar_dense and not self.paused:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture
def trainer(synthetic_cache, tmp_path):
    table = read_features(synthetic_cache)
    torch.manual_seed(0)
    model = UMBEnet(UMBEnetConfig.preset("tiny", classes=list(table.spec.classes)))
    return loop.StageTrainer(model, table, make_splits(table, 1, 0.1, 0), table.presence, "subsets",
                             "onestage", tmp_path, 0, DistInfo())


def count_step(trainer) -> int:
    rows = trainer.splits.train[:4]
    trainer._step(rows, trainer.available[rows])  # warm-up: lazily built caches
    mode = HostSyncs()
    real = trainer.opt.step

    def step(*a, **k):  # torch's own Adam reads its CPU step counters; on a GPU they stay on the host
        mode.paused = True
        try:
            return real(*a, **k)
        finally:
            mode.paused = False

    trainer.opt.step = step
    with mode:
        stats = trainer._step(rows, trainer.available[rows])
    assert stats.device == trainer.info.device and stats.dtype == torch.float64
    return mode.count


def test_one_step_barely_syncs_and_not_per_loss_part(trainer, monkeypatch):
    # At most the CPU-only presence check in AdaptiveFusion (skipped for GPU tensors); before: one
    # float() per loss part and the fusion check (6), plus .cpu() copies of labels and predictions.
    full = count_step(trainer)
    assert full <= 1
    monkeypatch.setattr(loop, "LOSS_PARTS", ("total", "ce"))
    assert count_step(trainer) == full


def test_epoch_sums_match_the_per_step_numbers(trainer):
    rows = trainer.splits.train[:8]
    present = trainer.available[rows]
    sums = trainer._step(rows, present).cpu().numpy()
    keys = trainer._sum_keys()
    n = sums[keys.index("n")]
    cm = sums[keys.index("cm0"):].reshape(4, 4)
    assert n == 8 and cm.sum() == 8
    assert sums[keys.index("total")] / n == pytest.approx(
        sums[keys.index("ce")] / n + sums[keys.index("l1")] / n + sums[keys.index("gate_l1")] / n + sums[keys.index("key")] / n,
        rel=1e-5)


def test_uploads_to_a_gpu_are_pinned_and_non_blocking(synthetic_cache, monkeypatch):
    """make_batch for device cuda (torch.Tensor patched: pin_memory and .to record, stay on the CPU)."""
    table = read_features(synthetic_cache)
    calls = collections.Counter()
    real_to = torch.Tensor.to

    def pin(self):
        calls["pinned"] += 1
        return self

    def to(self, *a, **k):
        target = a[0] if a else k.get("device")
        if isinstance(target, torch.device) and target.type == "cuda":
            calls["upload"] += 1
            calls["non_blocking"] += bool(k.get("non_blocking"))
            calls[f"dtype {self.dtype}"] += 1
            return self.clone()
        return real_to(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    monkeypatch.setattr(torch.Tensor, "to", to)
    rows = np.arange(4)
    batch = data.make_batch(table, rows, table.presence[rows] | np.array([True, False, False]), torch.device("cuda", 0))
    assert calls["upload"] == calls["pinned"] == calls["non_blocking"] == 6
    assert calls["dtype torch.float16"] >= 2  # the cache's float16 crosses the bus as float16
    assert batch.frame_emb.dtype is torch.float32  # and is converted on the device


def test_validation_eval_and_predict_share_float32(trainer):
    """Inside a bfloat16 autocast region (a GPU training step's), validation still runs in float32,
    so the UAR that picks the best checkpoint is the one `eval --split val` reports."""
    model, table, rows = trainer.model, trainer.table, trainer.splits.val
    ref = loop.evaluate(model, table, rows, trainer.available, torch.device("cpu"), 4)
    logits_ref, _ = loop.predict_rows(model, table, rows, trainer.available[rows], torch.device("cpu"), 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loop.evaluate(model, table, rows, trainer.available, torch.device("cpu"), 4)
        logits, _ = loop.predict_rows(model, table, rows, trainer.available[rows], torch.device("cpu"), 4)
        subsets = run_subsets(model, table, rows, [("video", "audio", "text")], 4, "cpu")
    assert got == ref and np.array_equal(logits, logits_ref)
    assert np.array_equal(subsets["preds"][("video", "audio", "text")], logits_ref.argmax(1))
