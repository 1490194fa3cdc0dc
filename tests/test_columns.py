"""Nothing the toolkit prints is cut at an 80-column terminal (issue 24): every table the CLI
prints (prep, the training summary, eval with and without --wide and --drop, report, predict on a
video and on a folder, info on a preset and on a run, study status where the command exists),
rendered by the real command in a child process with COLUMNS=80 and stdout a pipe, as in
``make demo | cat``. Rich marks what it cuts with "…"; long names must wrap or fold instead.

The run and a video get names longer than a line, so folding is exercised, not only avoided.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 80
RUN = "a-run-name-long-enough-that-no-eighty-column-line-can-hold-it-whole-0123456789"
VIDEO = "a-video-whose-file-name-is-longer-than-any-column-of-the-folder-table.mp4"


def umbenet(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The command as a user runs it, at 80 columns, its output piped."""
    environ = dict(os.environ, COLUMNS=str(WIDTH), PYTHONPATH=str(ROOT), **(env or {}))
    environ.pop("FORCE_COLOR", None)
    return subprocess.run([sys.executable, "-m", "umbenet_cli.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env=environ, timeout=600)


def check_uncut(proc: subprocess.CompletedProcess, rc: int = 0) -> str:
    """``proc`` exited with ``rc``, nothing it printed was cut, and its tables fit 80 columns.
    Returns stdout and stderr together, without whitespace (what folding keeps whole)."""
    both = proc.stdout + proc.stderr
    assert proc.returncode == rc, both[-4000:]
    assert "…" not in both, both
    too_wide = [line for line in proc.stdout.splitlines() if len(line) > WIDTH]
    assert not too_wide, too_wide  # stdout is rich's alone (logging writes to stderr, unwrapped)
    return "".join(both.split())


def read_down(out: str) -> str:
    """The cells of the tables in ``out`` read down each column, without spaces: a name folded over
    several lines of its cell reads whole."""
    import re

    columns: dict[int, list[str]] = {}
    for line in out.splitlines():
        if line[:1] in ("│", "┃"):
            for i, cell in enumerate(re.split("[│┃]", line[1:-1])):
                columns.setdefault(i, []).append("".join(cell.split()))
    return " ".join("".join(cells) for cells in columns.values())


@pytest.fixture(scope="module")
def project(tmp_path_factory, sample_cache):
    """A project folder: the sample cache (prep then reuses every clip), a tiny two-stage run with a
    long name, a second fold (fold 1 copied: the tables are under test, not the scores), and
    videos: a good one with a long name, one without audio, one that is no video."""
    folder = tmp_path_factory.mktemp("columns")
    (folder / "sample_data").symlink_to(ROOT / "sample_data", target_is_directory=True)
    shutil.copytree(sample_cache, folder / "cache")
    printed = {"prep": umbenet(folder, "prep", "mafw", "sample_data/mafw", "--out", "cache", "--preset", "tiny"),
               "train": umbenet(folder, "train", "--cache", "cache", "--name", RUN, "--preset", "tiny", "--fold", "1",
                                "--stage", "both", "--max-steps", "2")}
    run = folder / "runs" / RUN
    if printed["train"].returncode == 0:
        shutil.copytree(run / "fold1", run / "fold2")
        printed["eval"] = umbenet(folder, "eval", str(run))  # also what the report reads
    videos = folder / "videos"
    videos.mkdir()
    shutil.copy(ROOT / "sample_data" / "mafw" / "clips" / "00001.mp4", videos / VIDEO)
    shutil.copy(ROOT / "sample_data" / "mafw" / "clips" / "00007.mp4", videos / "00007.mp4")
    (videos / "not-a-video.mp4").write_text("this is text")
    return folder, run, printed


def test_prep_and_train(project):
    _, _, printed = project
    check_uncut(printed["prep"])
    text = check_uncut(printed["train"])
    assert "trainingsummary" in text and RUN in text  # the title folds the long run folder, whole


def test_eval_default_wide_and_drop(project):
    folder, run, printed = project
    text = check_uncut(printed["eval"])
    assert "UAR%" in text and "w/o" in text and "mean±stdover2fold(s)" in text and "--wide" in text
    text = check_uncut(umbenet(folder, "eval", str(run), "--wide"))  # headers wrap: words, not phrases
    assert "leftout" in text and "strict" in text and "clipsperfold" in text
    text = check_uncut(umbenet(folder, "eval", str(run), "--drop", "audio"))
    assert "V+T" in text


def test_report(project):
    folder, run, _ = project
    proc = umbenet(folder, "report", str(run), "--out", "reports/r")
    text = check_uncut(proc)
    assert "gatheredforthereport" in text and "UAR%" in text
    assert RUN in read_down(proc.stdout)  # folded inside its cell, over several lines


def test_predict_a_video_and_a_folder(project):
    folder, run, _ = project
    text = check_uncut(umbenet(folder, "predict", "videos/00007.mp4", "--run", str(run), "--fold", "1", "--no-asr"))
    assert "poolprompts#" in text
    proc = umbenet(folder, "predict", "videos", "--run", str(run), "--fold", "1", "--no-asr")
    text = check_uncut(proc, rc=1)
    assert VIDEO in read_down(proc.stdout) and "1of3videoscouldnotbepredicted" in text


def test_info_on_a_preset_and_on_a_run(project, tmp_path):
    folder, run, _ = project
    text = check_uncut(umbenet(folder, "info", "--preset", "tiny"))
    assert "backbone.clip.vision_model" in text
    text = check_uncut(umbenet(folder, "info", str(run)))
    assert "has2folds(1,2):describingfold1" in text and "backbone.clip.vision_model" in text
    # The default preset offline, its weights not here: the configuration and a note.
    check_uncut(umbenet(folder, "info", env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}))


def test_every_help_page(project):
    folder, _, _ = project
    from umbenet_cli.cli import app

    names = [c.name or c.callback.__name__ for c in app.registered_commands] + \
            [g.name for g in app.registered_groups if g.name]
    for name in ["", *names]:
        check_uncut(umbenet(folder, *([name] if name else []), "--help"))


def test_study_status_where_present(project):
    """``umbenet study`` is being built elsewhere; once it exists its status table must not be cut
    either (run on this project's runs folder, whatever it says)."""
    from umbenet_cli.cli import app

    if "study" not in {g.name for g in app.registered_groups} | {c.name for c in app.registered_commands}:
        pytest.skip("no `umbenet study` command yet")
    folder, _, _ = project
    proc = umbenet(folder, "study", "status")
    assert "…" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
