"""umbenet train refuses bad input with exit code 2 and writes nothing; --gpus parsing."""
from __future__ import annotations

import os
import re

import pytest

from umbenet_cli.cli import main
from umbenet_cli.training.distributed import DeviceError, check_gpus, parse_gpus, worker_argv


def run(cache, runs, *extra):
    return main(["train", "--cache", str(cache), "--runs-dir", str(runs), "--preset", "tiny", "--name", "r", *extra])


@pytest.mark.parametrize("extra,message", [
    (["--fold", "9"], "this cache defines folds [1, 2, 3, 4, 5]"),
    ([], "pass --fold N, or --fold all"),
    (["--fold", "1", "--set", "pool.sise=3"], "unknown key 'pool.sise'"),
    (["--fold", "1", "--set", "optim.lr=fast"], "optim.lr='fast'"),
    (["--fold", "1", "--set", "num_frames=8"], "the cache has 4 frames per clip"),
    (["--fold", "1", "--set", "backbone=openai/clip-vit-base-patch16"], "could not load the CLIP backbone 'openai/clip-vit-base-patch16'"),
    (["--fold", "1", "--set", "backbone=/nonexistent/clip"], "backbone '/nonexistent/clip': no such folder"),
    (["--fold", "1", "--modalities", "video,smell"], "choose among ['video', 'audio', 'text']"),
    (["--fold", "1", "--stage", "2"], "stage 2 needs a trained stage 1"),
    (["--fold", "1", "--stage", "3"], "--stage '3'"),
    (["--fold", "1", "--gpus", "0,x"], "--gpus '0,x'"),
])
def test_bad_input_exits_2_and_writes_nothing(synthetic_cache, tmp_path, capsys, extra, message):
    assert run(synthetic_cache, tmp_path, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_empty_cache(tmp_path, capsys):
    (tmp_path / "cache" / "features").mkdir(parents=True)
    assert run(tmp_path / "cache", tmp_path / "runs", "--fold", "1") == 2
    assert "no feature cache at" in capsys.readouterr().err


def test_modality_the_cache_lacks(tmp_path, capsys):
    from umbenet_cli.data.synthetic import SyntheticSpec, write_synthetic_cache
    from umbenet_cli.model import load_backbone

    cache = write_synthetic_cache(tmp_path / "c", SyntheticSpec(classes=("a", "b"), clips_per_class=10,
                                  missing={"video": 0.0, "audio": 0.0, "text": 1.0}),
                                  "umbenet/tiny-random-clip", load_backbone("umbenet/tiny-random-clip").fingerprint())
    assert run(cache, tmp_path / "runs", "--fold", "1", "--modalities", "text") == 2
    assert "no clip of the cache has" in capsys.readouterr().err


def test_class_without_training_clips(tmp_path, capsys):
    from umbenet_cli.data.synthetic import SyntheticSpec, write_synthetic_cache
    from umbenet_cli.model import load_backbone

    # One clip per class, all in fold 1: holding fold 1 out leaves no training clip at all.
    cache = write_synthetic_cache(tmp_path / "c", SyntheticSpec(classes=("a", "b", "c"), clips_per_class=1, folds=1),
                                  "umbenet/tiny-random-clip", load_backbone("umbenet/tiny-random-clip").fingerprint())
    assert run(cache, tmp_path / "runs", "--fold", "1") == 2
    assert "no training clips for class(es)" in capsys.readouterr().err


def test_existing_run_is_not_overwritten(synthetic_cache, tmp_path, capsys):
    args = ["--fold", "1", "--stage", "one", "--max-steps", "1"]
    assert run(synthetic_cache, tmp_path, *args) == 0
    assert run(synthetic_cache, tmp_path, *args) == 2
    assert "continue it with --resume" in capsys.readouterr().err


def test_parse_gpus():
    assert parse_gpus("0,1") == [0, 1] and parse_gpus("3") == [3] and parse_gpus(None) == []
    for bad in ("0,0", "-1", "a", ","):
        with pytest.raises(DeviceError):
            parse_gpus(bad)


def test_gpus_on_a_machine_without_them(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA device is usable"):
        check_gpus([0])


def test_worker_argv_drops_launch_options():
    argv = ["train", "--gpus", "0,1", "--nproc=2", "--fold", "1", "--master-port", "123", "--name", "x"]
    assert worker_argv(argv, [0, 1]) == ["train", "--fold", "1", "--name", "x", "--device", "cuda"]
    # The worker's device is the resolved one, never a second, conflicting --device.
    assert worker_argv(["train", "--device=cuda:1", "--nproc", "2"], []) == ["train", "--device", "cpu"]


def test_launch_one_node_on_a_free_port_several_at_the_master():
    from torch.distributed.run import parse_args

    from umbenet_cli.training.distributed import launch_args

    one = parse_args(launch_args(["train", "--gpus", "0,1", "--master-port", "29511"], 2, [0, 1]))
    assert one.standalone and one.nproc_per_node == "2" and one.max_restarts == 0
    assert one.training_script_args[-2:] == ["--device", "cuda"] and "--master-port" not in one.training_script_args
    many = parse_args(launch_args(["train"], 2, [0, 1], nnodes=2, node_rank=1, master_addr="10.0.0.1",
                                  master_port=29600))
    assert not many.standalone and (many.nnodes, many.node_rank, many.master_addr, many.master_port) == \
        ("2", 1, "10.0.0.1", 29600)


def test_relaunch_translates_gpus_through_the_mask(monkeypatch):
    import torch.distributed.run as tr

    from umbenet_cli.training import distributed as D

    seen = {}
    monkeypatch.setenv(D.LAUNCHED_ENV, "")  # restored after the test, like the mask
    monkeypatch.setenv(D.LAUNCHER_PID_ENV, "")
    monkeypatch.setattr(tr, "run", lambda args: seen.update(mask=os.environ["CUDA_VISIBLE_DEVICES"], args=args))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5")
    assert D.relaunch(["train", "--gpus", "2,0"], 2, [2, 0]) == 0
    assert seen["mask"] == "5,2"  # --gpus counts inside the scheduler's mask
    assert seen["args"].training_script_args[-2:] == ["--device", "cuda"]


def test_a_cache_without_split_or_fold_names_the_cause(synthetic_cache):
    from dataclasses import replace

    import numpy as np

    from umbenet_cli.data.cache_read import read_features
    from umbenet_cli.training.data import DataError, make_splits

    table = read_features(synthetic_cache)
    bare = replace(table, folds=np.full(len(table), -1, np.int8), splits=np.array([None] * len(table), dtype=object))
    with pytest.raises(DataError, match="no split and no fold .a manifest without a `split`"):
        make_splits(bare, None, 0.1, 0)


def test_a_validation_share_far_above_val_fraction_is_said(sample_cache, tmp_path, capsys):
    # 26 clips of 11 classes in the training folds: one validation clip per class is 11 (42%).
    assert run(sample_cache, tmp_path, "--fold", "1", "--stage", "one", "--max-steps", "1") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(r"validation holds \d+ of \d+ training-fold clips \(\d+%, --val-fraction 0.1 asked 10%\)", err)
