"""Half-written runs and mismatched inputs: damaged checkpoints, a stage 2 that never saved, a cache
that does not fit, a run folder passed where a checkpoint is expected. Clean messages, exit 2."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from umbenet_cli.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_cache):
    """A two-stage run, one step per stage (module-wide; tests copy it before damaging it)."""
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "--cache", str(synthetic_cache), "--runs-dir", str(runs), "--name", "r", "--preset", "tiny",
                 "--fold", "1", "--max-steps", "1"]) == 0
    return runs / "r"


@pytest.fixture
def run(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "r")
    return tmp_path / "r"


def test_a_checkpoint_missing_its_weights_is_named(run, capsys, tmp_path):
    best = run / "fold1" / "stage2" / "checkpoints" / "best"
    (best / "model.safetensors").unlink()
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    for argv in (["eval", str(run)], ["info", "--checkpoint", str(best)],
                 ["predict", str(video), "--run", str(run), "--no-asr"]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.replace("\n", " ")
        assert "is damaged: model.safetensors is missing" in err and "--checkpoint last" in err, (argv, err)
        assert "Traceback" not in err and "FileNotFoundError" not in err


def test_stage_2_without_a_checkpoint_evaluates_stage_1_and_says_so(run, capsys):
    from umbenet_cli.reporting.collect import collect_runs

    shutil.rmtree(run / "fold1" / "stage2" / "checkpoints")  # interrupted before its first save
    (run / "fold1" / "stage2" / "result.json").unlink()
    assert main(["eval", str(run), "--drop", "audio"]) == 0
    err = capsys.readouterr().err.replace("\n", " ")
    assert "warning:" in err and "stage2 has no complete 'best' checkpoint" in err and "evaluating stage1" in err
    summary = json.loads((run / "eval-test-drop-audio.json").read_text())
    assert summary["stages"] == ["stage1"] and "evaluating stage1" in summary["stage_notes"][0]
    results = json.loads((run / "fold1" / "stage1" / "eval" / "test-drop-audio" / "results.json").read_text())
    assert results["stage"] == "stage1" and results["stage_note"]
    (exp,), _ = collect_runs([run])
    assert exp.strategy == "stage 1 only"  # not "2-stage", which run.json asked for


def test_eval_on_a_cache_that_does_not_fit_uses_trains_check(run, tmp_path, capsys):
    from umbenet_cli.data.synthetic import SyntheticSpec, write_synthetic_cache
    from umbenet_cli.model import load_backbone
    from umbenet_cli.model.config import TINY_BACKBONE

    other = write_synthetic_cache(tmp_path / "t8", SyntheticSpec(classes=("happy", "sad", "neutral", "angry"),
                                  clips_per_class=3, num_frames=8), TINY_BACKBONE,
                                  load_backbone(TINY_BACKBONE).fingerprint())
    assert main(["eval", str(run), "--cache", str(other)]) == 2
    err = capsys.readouterr().err
    assert "does not fit this model" in err and "the cache has 8 frames per clip" in err and "Traceback" not in err


def test_info_on_a_run_folder_says_it_is_a_run(run, capsys):
    assert main(["info", "--checkpoint", str(run)]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "is a training run, not a checkpoint folder" in err and "interrupted" not in err
    assert str(run / "fold1" / "stage2" / "checkpoints" / "best") in err
    assert main(["info", "--checkpoint", str(run / "fold1" / "stage1")]) == 2
    assert "is a stage folder of a run" in capsys.readouterr().err


def test_eval_without_run_takes_the_runs_with_checkpoints(run, tmp_path, monkeypatch, capsys):
    (tmp_path / "unstarted").mkdir()
    (tmp_path / "unstarted" / "run.json").write_text((run / "run.json").read_text())  # no checkpoint yet
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--runs-dir", ".", "--drop", "audio"]) == 0
    assert "evaluating 1 run(s) under ./: r" in capsys.readouterr().err
    assert (run / "eval-test-drop-audio.json").is_file()
    assert main(["eval"]) == 2  # no ./runs here
    err = capsys.readouterr().err
    assert "which run? no run there" in err and "Traceback" not in err
