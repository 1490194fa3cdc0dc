"""``umbenet info``: a preset offline without its weights, and a run folder as ``eval`` takes it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from umbenet_cli.cli import main


def flat(text: str) -> str:
    return " ".join(text.split())


def test_default_preset_offline_prints_the_configuration_and_one_note(tmp_path):
    """The weights of the default backbone are not here (empty Hugging Face home, offline): the
    configuration, a one-line note, exit 0, as the README says."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "umbenet_cli.cli", "info"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert config["backbone"] == "openai/clip-vit-base-patch16"
    note = flat(proc.stderr)  # one message (rich wraps it at the terminal's width), nothing else
    assert note.startswith("note: no widths or parameter counts") and note.count("note:") == 1, proc.stderr
    assert "HF_HUB_OFFLINE is set" in note and "hf download openai/clip-vit-base-patch16" in note
    assert "error" not in note.lower() and note.endswith("a Hugging Face cache that holds them")


def test_a_broken_backbone_is_still_an_error(capsys):
    """Only missing weights are a note: a backbone folder that does not exist is a user error."""
    assert main(["info", "--preset", "tiny", "--set", "backbone=/no/such/clip"]) == 2
    captured = capsys.readouterr()
    assert "no such folder" in captured.err and '"pool"' in captured.out


def test_info_on_a_run_folder(train_tiny_run, tmp_path, capsys):
    run = train_tiny_run(tmp_path)
    assert main(["info", str(run)]) == 0
    captured = capsys.readouterr()
    assert f"checkpoint {run / 'fold1' / 'onestage' / 'checkpoints' / 'best'}" in flat(captured.out)
    assert "umbenet/tiny-random-clip" in captured.out and "note:" not in captured.err
    # A run of several folds: the folds listed, the first described; --fold picks another.
    shutil.copytree(run / "fold1", run / "fold3")
    assert main(["info", str(run)]) == 0
    captured = capsys.readouterr()
    assert f"{run} has 2 folds (1, 3): describing fold 1; pick another with --fold N" in flat(captured.err)
    assert str(run / "fold1" / "onestage") in flat(captured.out)
    assert main(["info", str(run), "--fold", "3"]) == 0
    assert str(run / "fold3" / "onestage" / "checkpoints" / "best") in flat(capsys.readouterr().out)
    # Only the last checkpoint there: described from it.
    shutil.rmtree(run / "fold3" / "onestage" / "checkpoints" / "best")
    assert main(["info", str(run), "--fold", "3"]) == 0
    assert str(run / "fold3" / "onestage" / "checkpoints" / "last") in flat(capsys.readouterr().out)


def test_info_run_errors(train_tiny_run, tmp_path, capsys):
    run = train_tiny_run(tmp_path)
    for argv, message in ((["info", str(run), "--checkpoint", str(run)], "give one of them"),
                          (["info", "--fold", "2"], "--fold 2 picks a fold of RUN"),
                          (["info", str(run), "--set", "pool.size=8"], "--set changes a preset"),
                          (["info", str(run), "--fold", "4"], "--fold 4: the run")):
        assert main(argv) == 2, argv
        err = flat(capsys.readouterr().err)
        assert message in err and "Traceback" not in err, (argv, err)
