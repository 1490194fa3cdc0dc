"""Runs as researchers treat them: resumed from elsewhere, copied, moved, extended, interrupted.

Every stage here stops after a step or two (--max-steps): what is tested is which run and cache
a command continues, and what it does with the options given, not learning.
"""
from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from umbenet_cli.cli import main

QUICK = ["--preset", "tiny", "--fold", "1", "--max-steps", "2"]


def result(run: Path, stage: str = "stage1") -> dict:
    return json.loads((run / "fold1" / stage / "result.json").read_text())


@pytest.fixture
def project(tmp_path, monkeypatch, synthetic_cache):
    """A project folder holding two caches (so no default cache) and the cwd set to it."""
    (tmp_path / "cache").mkdir()
    for name in ("one", "two"):
        (tmp_path / "cache" / name).symlink_to(synthetic_cache, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_run_json_records_resolved_paths_and_resume_needs_no_cache(project, monkeypatch, capsys):
    assert main(["train", "--cache", "cache/one", "--name", "r", "--stage", "1", *QUICK]) == 0
    opts = json.loads((project / "runs" / "r" / "run.json").read_text())
    assert opts["cache"] == str(project / "cache" / "one") and opts["run_dir"] == str(project / "runs" / "r")
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # another working directory, two caches: none is the default
    assert main(["train", "--runs-dir", "../runs", "--name", "r", "--resume", "--max-steps", "3"]) == 0
    assert result(project / "runs" / "r")["global_step"] == 3
    assert "--max-steps 3 (was 2)" in capsys.readouterr().err


def test_a_copied_run_resumes_itself_not_the_original(project, monkeypatch, capsys):
    assert main(["train", "--cache", "cache/one", "--name", "r", "--stage", "1", *QUICK]) == 0
    shutil.copytree(project / "runs" / "r", project / "half" / "r5")
    assert main(["train", "--runs-dir", "half", "--name", "r5", "--resume", "--max-steps", "4"]) == 0
    assert result(project / "half" / "r5")["global_step"] == 4
    assert result(project / "runs" / "r")["global_step"] == 2  # the original is untouched
    assert json.loads((project / "half" / "r5" / "run.json").read_text())["run_dir"] == str(project / "half" / "r5")
    # rich wraps and centres a long title: compare without whitespace
    squeeze = lambda text: "".join(text.split())
    assert squeeze(f"training summary: {project / 'half' / 'r5'}") in squeeze(capsys.readouterr().err)


def test_a_moved_cache_is_accepted_other_clips_are_not(project, synthetic_cache, tmp_path_factory, capsys):
    from umbenet_cli.data.synthetic import SyntheticSpec, write_synthetic_cache
    from umbenet_cli.model import load_backbone
    from umbenet_cli.model.config import TINY_BACKBONE

    shutil.copytree(synthetic_cache, project / "moved")
    assert main(["train", "--cache", "moved", "--name", "r", "--stage", "1", *QUICK]) == 0
    (project / "moved").rename(project / "moved-again")
    assert main(["train", "--name", "r", "--resume", "--max-steps", "3"]) == 2
    assert "is not there (moved or deleted?)" in capsys.readouterr().err
    assert main(["train", "--name", "r", "--resume", "--max-steps", "3", "--cache", "moved-again"]) == 0
    assert json.loads((project / "runs" / "r" / "run.json").read_text())["cache"] == str(project / "moved-again")
    other = write_synthetic_cache(tmp_path_factory.mktemp("other"), SyntheticSpec(
        classes=("happy", "sad", "neutral", "angry"), clips_per_class=21), TINY_BACKBONE,
        load_backbone(TINY_BACKBONE).fingerprint())
    capsys.readouterr()
    assert main(["train", "--name", "r", "--resume", "--max-steps", "4", "--cache", str(other)]) == 2
    assert "holds other clips, labels or folds than the run started on" in capsys.readouterr().err
    assert result(project / "runs" / "r")["global_step"] == 3


def test_options_given_with_resume_are_applied_or_refused_never_ignored(project, capsys):
    assert main(["train", "--cache", "cache/one", "--name", "r", "--stage", "one", "--set",
                 "optim.max_epochs=1", "--preset", "tiny", "--fold", "1"]) == 0
    assert result(project / "runs" / "r", "onestage")["epochs"] == 1
    for refused, says in ((["--seed", "3"], "--seed 3: the run trained with 0"),
                          (["--set", "pool.size=3"], "--set pool.size=3: the run trained with 6"),
                          (["--fold", "2"], "--fold 2: the run trained with 1"),
                          (["--preset", "default"], "--preset default: backbone would be"),
                          (["--stage", "1"], "do not share a run")):
        capsys.readouterr()
        assert main(["train", "--name", "r", "--resume", *refused]) == 2, refused
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, err
    # The command that made the run, with --resume and more epochs: the stage goes on.
    assert main(["train", "--cache", "cache/one", "--name", "r", "--stage", "one", "--set", "optim.max_epochs=2",
                 "--preset", "tiny", "--fold", "1", "--resume"]) == 0
    assert "--set optim.max_epochs=2 (was 1)" in capsys.readouterr().err
    done = result(project / "runs" / "r", "onestage")
    assert done["epochs"] == 2 and done["stop_reason"] == "reached max_epochs=2"
    lines = (project / "runs" / "r" / "fold1" / "onestage" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert json.loads((project / "runs" / "r" / "run.json").read_text())["model"]["optim"]["max_epochs"] == 2


def test_stage_1_then_stage_2_as_the_readme_shows(project, capsys):
    args = ["--cache", "cache/one", "--preset", "tiny", "--fold", "1", "--max-steps", "2"]
    assert main(["train", "--stage", "1", *args]) == 0
    assert main(["train", "--stage", "1", *args]) == 2  # the same again: nothing to add
    assert "already holds a run: continue it with --resume" in capsys.readouterr().err
    assert main(["train", "--stage", "2", *args]) == 0
    run = project / "runs" / "one-tiny"
    assert result(run, "stage2")["global_step"] == 2 and (run / "fold1" / "stage2" / "init.json").is_file()
    assert json.loads((run / "run.json").read_text())["stage"] == "both"
    assert "the run goes on as --stage both (was 1)" in capsys.readouterr().err


def test_ctrl_c_names_the_command_that_resumes(project, monkeypatch, capsys):
    from umbenet_cli.training import loop

    real = loop.StageTrainer._step

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop.StageTrainer, "_step", interrupted)
    assert main(["train", "--cache", "cache/one", "--name", "r", "--stage", "1", *QUICK]) == 130
    err = capsys.readouterr().err.replace("\n", "")
    assert err.count("to resume, run `") == 1 and "Traceback" not in err
    command = err[err.index("to resume, run `") + len("to resume, run `"):]
    command = command[:command.index("`")]
    monkeypatch.setattr(loop.StageTrainer, "_step", real)
    argv = shlex.split(command)
    assert argv[:2] == ["umbenet", "train"] and "--resume" in argv
    assert main(argv[1:]) == 0
    assert result(project / "runs" / "r")["global_step"] == 2


def test_train_and_eval_offline_with_a_local_copy_of_the_caches_backbone(project, capsys):
    """The README's workflow: the cache made with the backbone's id, training with --set
    backbone=/path to a copy of the same weights; matched on the fingerprint, the id is a label."""
    from umbenet_cli.model.tiny_backbone import write_tiny_backbone

    copy = write_tiny_backbone(project / "clip-copy")
    assert main(["train", "--cache", "cache/one", "--name", "r", "--stage", "one", "--set", f"backbone={copy}",
                 *QUICK]) == 0
    assert main(["train", "--name", "r", "--resume", "--max-steps", "3"]) == 0
    assert main(["eval", "runs/r", "--drop", "audio"]) == 0
    assert result(project / "runs" / "r", "onestage")["global_step"] == 3
