"""umbenet train end to end on tiny caches: both stages, learning, resume, distributed, bad input."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from umbenet_cli.cli import main


def train(cache, runs, *extra):
    return main(["train", "--cache", str(cache), "--runs-dir", str(runs), "--preset", "tiny", *extra])


def metrics(folder: Path) -> list[dict]:
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    for line in lines:  # timings differ between runs; everything else must not
        for k in ("seconds", "steps_per_s", "clips_per_s"):
            line.pop(k)
    return lines


def weights(folder: Path) -> dict:
    return load_file(str(folder / "checkpoints" / "last" / "model.safetensors"))


def test_both_stages_on_the_sample_cache(sample_cache, tmp_path):
    assert train(sample_cache, tmp_path, "--name", "r", "--fold", "2", "--set", "optim.max_epochs=2") == 0
    run = tmp_path / "r"
    opts = json.loads((run / "run.json").read_text())
    assert opts["model"]["classes"][0] == "anger" and opts["fold"] == "2"
    assert json.loads((run / "classes.json").read_text())[-1] == "disappointment"
    s1, s2 = run / "fold2" / "stage1", run / "fold2" / "stage2"
    for stage in (s1, s2):
        assert [m["epoch"] for m in metrics(stage)] == [1, 2]
        assert (stage / "checkpoints" / "best" / "COMPLETE").is_file()
        assert json.loads((stage / "result.json").read_text())["stop_reason"] == "reached max_epochs=2"
    first = metrics(s1)[0]
    assert set(first["train"]) == {"total", "ce", "l1", "gate_l1", "key", "acc", "uar", "war"}
    # Stage 1 validates each modality alone (the epoch's numbers are their means)
    assert set(first["val"]) == {"loss", "uar", "war", "n", "rule", "per_modality"} and first["lr"] == 2e-3
    assert first["val"]["rule"] == "unimodal" and set(first["val"]["per_modality"]) <= {"video", "audio", "text"}
    assert first["val"]["uar"] == np.mean([v["uar"] for v in first["val"]["per_modality"].values()])
    assert set(metrics(s2)[0]["val"]) == {"loss", "uar", "war", "n", "rule"} and metrics(s2)[0]["val"]["rule"] == "all"
    counts = np.array(metrics(s1)[-1]["pool_counts"])
    assert counts[[1, 2, 4]].sum() == counts.sum() > 0  # stage 1 presents one modality per clip
    # Stage 2 starts from exactly the prompts the counting pass of stage 1's best checkpoint found
    # selected more than chance for some modality (p-values recorded per prompt and modality).
    init = json.loads((s2 / "init.json").read_text())
    p_min = np.min([init["stage1_p_values"][m] for m in init["stage1_p_values"]], axis=0)
    assert sorted(init["prompts_carried"]) == np.flatnonzero(p_min <= init["threshold"]).tolist()
    assert init["carried"] == len(init["prompts_carried"])
    assert (run / "log.txt").read_text().count("epoch") >= 4


def test_loss_falls_on_a_learnable_problem(synthetic_cache, tmp_path):
    assert train(synthetic_cache, tmp_path, "--name", "r", "--fold", "1", "--stage", "one",
                 "--set", "optim.max_epochs=8", "--set", "optim.stop_train_accuracy=1.0") == 0
    m = metrics(tmp_path / "r" / "fold1" / "onestage")
    # The last three epochs, not the last one alone: an epoch is 14 steps of batch 4 at the paper's
    # lr 2e-3, so one epoch's mean can spike (seed 0: 0.64 -> 1.00 -> the run's end) while the
    # model has learned; a model that does not learn never gets near these bounds.
    last = m[-3:]
    assert min(e["train"]["ce"] for e in last) < 0.6 * m[0]["train"]["ce"]
    assert max(e["train"]["acc"] for e in last) > 0.6


def test_resume_after_interrupt_matches_uninterrupted(synthetic_cache, tmp_path, monkeypatch):
    args = ["--fold", "1", "--stage", "both", "--set", "optim.max_epochs=2", "--save-every", "1"]
    assert train(synthetic_cache, tmp_path, "--name", "straight", *args) == 0
    from umbenet_cli.training import loop

    real, calls = loop.StageTrainer._step, {"n": 0}

    def dies(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 40:  # in stage 2's first epoch (stage 1 has 2 x 14 steps)
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(loop.StageTrainer, "_step", dies)
    assert train(synthetic_cache, tmp_path, "--name", "cut", *args) == 130
    monkeypatch.setattr(loop.StageTrainer, "_step", real)
    assert not (tmp_path / "cut" / "fold1" / "stage2" / "result.json").exists()
    assert train(synthetic_cache, tmp_path, "--name", "cut", "--resume") == 0
    for stage in ("stage1", "stage2"):
        a, b = tmp_path / "straight" / "fold1" / stage, tmp_path / "cut" / "fold1" / stage
        assert metrics(a) == metrics(b)
        wa, wb = weights(a), weights(b)
        assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_resume_after_a_kill_between_an_epochs_line_and_its_checkpoint(synthetic_cache, tmp_path, monkeypatch):
    """The ordering a `kill -9` hits one run in a few (CI saw epoch 4 twice): with --save-every 1
    the last step's checkpoint has the epoch's global step but not its end, then the epoch's
    metrics line is written, then the end-of-epoch checkpoint. Stopped between the last two, the
    resume must not write the epoch's line a second time; forced here instead of hoped for."""
    args = ["--fold", "1", "--stage", "one", "--set", "optim.max_epochs=3", "--save-every", "1"]
    assert train(synthetic_cache, tmp_path, "--name", "straight", *args) == 0
    from umbenet_cli.training import loop

    real = loop.StageTrainer._save

    def dies(self, name):
        if name == "last" and self.state.epoch == 2 and self.state.step_in_epoch == 0:
            raise KeyboardInterrupt  # epoch 2's line is written, its end-of-epoch checkpoint is not
        return real(self, name)

    monkeypatch.setattr(loop.StageTrainer, "_save", dies)
    assert train(synthetic_cache, tmp_path, "--name", "cut", *args) == 130
    monkeypatch.setattr(loop.StageTrainer, "_save", real)
    cut = tmp_path / "cut" / "fold1" / "onestage"
    assert [m["epoch"] for m in metrics(cut)] == [1, 2]
    with open(cut / "metrics.jsonl", "a") as fh:  # and a torn line, as a kill mid-write leaves
        fh.write('{"stage": "onestage", "epoch": 3, "glo')
    assert train(synthetic_cache, tmp_path, "--name", "cut", "--resume") == 0
    a = tmp_path / "straight" / "fold1" / "onestage"
    assert [m["epoch"] for m in metrics(cut)] == [1, 2, 3]
    assert metrics(a) == metrics(cut)
    wa, wb = weights(a), weights(cut)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_kill_during_training_then_resume(synthetic_cache, tmp_path):
    base = [sys.executable, "-m", "umbenet_cli.cli", "train", "--cache", str(synthetic_cache), "--runs-dir",
            str(tmp_path), "--preset", "tiny", "--fold", "1", "--stage", "one", "--set", "optim.max_epochs=3",
            "--save-every", "1"]
    assert subprocess.run(base + ["--name", "straight"], capture_output=True).returncode == 0
    proc = subprocess.Popen(base + ["--name", "cut"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "cut" / "fold1" / "onestage" / "checkpoints" / "last" / "meta.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if last.exists() and json.loads(last.read_text())["extra"]["global_step"] >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = subprocess.run(base + ["--name", "cut", "--resume"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    # The killed run's lock is taken over, saying whose it was.
    assert f"took over the run's lock from process {proc.pid}" in again.stderr.replace("\n", " ")
    a, b = tmp_path / "straight" / "fold1" / "onestage", tmp_path / "cut" / "fold1" / "onestage"
    assert metrics(a) == metrics(b)
    wa, wb = weights(a), weights(b)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_two_gloo_processes_match_one(synthetic_cache, tmp_path):
    args = ["--fold", "1", "--stage", "one", "--set", "optim.max_epochs=1", "--set", "optim.batch_size=4"]
    assert train(synthetic_cache, tmp_path, "--name", "one", *args) == 0
    # One node picks a free port itself (torchrun --standalone): no --master-port to collide on.
    proc = subprocess.run([sys.executable, "-m", "umbenet_cli.cli", "train", "--cache", str(synthetic_cache),
                           "--runs-dir", str(tmp_path), "--preset", "tiny", "--name", "two", "--nproc", "2",
                           *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = tmp_path / "one" / "fold1" / "onestage", tmp_path / "two" / "fold1" / "onestage"
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    # Adam turns round-off-sized gradients into sizeable steps, so weights agree to ~1e-4 rather
    # than bit for bit. Unsynchronised gradients would move them by ~lr per step (2e-3 x 14 steps).
    # Attention key biases are left out: softmax ignores them, so their true gradient is zero and
    # what they get is round-off alone, which Adam (eps 1e-8) turns into steps of ~0.1 lr; gradient
    # clipping at 1.0 used to shrink that below the tolerance, but the paper names no clipping.
    for k in wa:
        x, y = wa[k], wb[k]
        if k.endswith("in_proj_bias"):  # [q | k | v]: drop the key third
            E = x.shape[0] // 3
            x, y = np.delete(x, np.s_[E:2 * E]), np.delete(y, np.s_[E:2 * E])
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-3, err_msg=k)
    ma, mb = metrics(a)[0], metrics(b)[0]
    assert ma["pool_counts"] == mb["pool_counts"]
    np.testing.assert_allclose(ma["train"]["total"], mb["train"]["total"], rtol=1e-4)


def test_training_on_a_subset_skips_clips_without_it(synthetic_cache, tmp_path, capsys):
    # Text only: the synthetic neutral class has no text at all, like MAFW's neutral clips.
    assert train(synthetic_cache, tmp_path, "--name", "t", "--fold", "1", "--stage", "one",
                 "--modalities", "text", "--max-steps", "2") == 0
    err = capsys.readouterr().err
    assert "have none of the run's modalities and are left out" in err and "['neutral']" in err
