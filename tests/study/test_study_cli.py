"""`umbenet study` from the user's side, on the sample cache with the tiny preset."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from umbenet_cli.cli import main

TINY = ["--preset", "tiny", "--set", "optim.max_epochs=1"]
# Three quick one-stage runs: enough to interrupt the study between its first and its last.
QUICK_PLAN = """
name = "quick"
[[run]]
name = "a"
stage = "one"
max_steps = 1
logger = "none"
[[run]]
name = "b"
stage = "one"
max_steps = 1
logger = "none"
modalities = "video,text"
[[run]]
name = "c"
stage = "one"
max_steps = 1
logger = "none"
seed = 1
"""


def _states(study: Path) -> dict[str, str]:
    try:
        return {k: r["state"] for k, r in json.loads((study / "study.json").read_text())["runs"].items()}
    except (OSError, ValueError):
        return {}


def _mtimes(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_dry_run_lists_every_run_per_fold_and_creates_nothing(sample_cache, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["study", "run", "table4", "--cache", str(sample_cache), "--runs-dir", str(runs), "--fold", "1,2",
                 *TINY, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "10 run(s) x 2 fold(s)" in out and "= 20 fold-run(s)" in out
    for fold in ("fold1", "fold2"):
        assert f"umbenet eval {runs / 'table4' / fold / 'pool-L32-N8-K5'}" in out
    assert "--set pool.length=16 --set inherent_length=16 --set pool.size=8 --set pool.top_k=5 --fold 2" in out
    assert "--set optim.max_epochs=2 --set pool.length=32" in out and "--stage one" in out  # the one-stage arm
    assert not runs.exists()


def test_slurm_dry_run_prints_the_submission(sample_cache, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["study", "run", "ablation", "--cache", str(sample_cache), "--runs-dir", str(runs), "--fold", "1,2",
                 *TINY, "--launcher", "slurm", "--dry-run", "--slurm-partition", "gpu", "--slurm-time", "2:00:00",
                 "--slurm-gpus-per-job", "2", "--slurm-array-parallelism", "4", "--slurm-extra", "account=emo"]) == 0
    out = capsys.readouterr().out
    assert "2 GPU(s), 1 node, time limit 120 min, partition gpu, at most 4 tasks at once, --account=emo" in out
    assert "array 1: 6 task(s)" in out and "array 2: 4 task(s) (dependency=afterany:<array 1>" in out
    assert "[0] fold1/two_stage:" in out and "--gpus 0,1" in out and "--device cuda" in out
    assert not runs.exists()


def test_a_bad_plan_is_a_clean_error_naming_every_problem(sample_cache, tmp_path, capsys):
    plan = tmp_path / "bad.toml"
    plan.write_text('[[run]]\nname = "x"\nstage = "7"\nepochs = 3\n')
    assert main(["study", "run", str(plan), "--cache", str(sample_cache), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "stage = '7'" in err and "unknown key 'epochs'" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
    assert main(["study", "run", "ablation", "--cache", str(sample_cache), "--runs-dir", str(tmp_path / "runs"),
                 "--fold", "9"]) == 2
    assert "--fold 9" in capsys.readouterr().err


def test_interrupt_then_the_same_command_finishes_the_rest(sample_cache, tmp_path):
    """SIGINT once the first run is done: exit 130, no traceback; the same command finishes the
    others and leaves the finished run's files as they were; once more, it does nothing."""
    plan = tmp_path / "quick.toml"
    plan.write_text(QUICK_PLAN)
    runs = tmp_path / "runs"
    study = runs / "quick"
    args = ["study", "run", str(plan), "--cache", str(sample_cache), "--runs-dir", str(runs), "--fold", "1",
            "--preset", "tiny", "--jobs", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "umbenet_cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while "done" not in _states(study).values():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    first = next(k for k, s in _states(study).items() if s == "done")
    before = _mtimes(study / first)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err and "interrupted" in err
    states = _states(study)
    assert states[first] == "done" and set(states.values()) - {"done"} <= {"interrupted", "pending"}
    assert set(states.values()) != {"done"}
    assert main(args) == 0
    assert set(_states(study).values()) == {"done"}
    assert _mtimes(study / first) == before  # the finished run untouched
    for key in _states(study):
        assert (study / key / "eval-test.json").is_file()  # evaluated as `umbenet eval` does
    proc = subprocess.run([sys.executable, "-m", "umbenet_cli", *args], capture_output=True, text=True)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout
    assert "study run:" in (study / "study.log").read_text()


def test_slurm_launcher_through_submitits_local_executor(sample_cache, tmp_path):
    from umbenet_cli.study.run import StudyRequest, prepare
    from umbenet_cli.study.slurm import SlurmOptions, submit

    plan = tmp_path / "two.toml"
    plan.write_text("[[run]]".join(QUICK_PLAN.split("[[run]]")[:3]))  # runs a and b
    req = StudyRequest(plan=str(plan), cache=str(sample_cache), runs_dir=str(tmp_path / "runs"), fold="2",
                       preset="tiny", launcher="slurm", slurm=SlurmOptions(time="15"))
    study, data, keys = prepare(req)
    jobs = submit(study, data, keys, req.slurm, Console(file=open(os.devnull, "w")), cluster="local")
    assert len(jobs) == 2
    assert [job.result() for job in jobs] == ["done", "done"]
    assert _states(study) == {"fold2/a": "done", "fold2/b": "done"}
    assert (study / "fold2" / "b" / "eval-test.json").is_file()


@pytest.mark.slow  # about 8 minutes on 2 shared cores: 10 fold-runs, each a real train + eval
def test_ablation_on_two_folds(sample_cache, tmp_path):
    runs = tmp_path / "runs"
    args = ["study", "run", "ablation", "--cache", str(sample_cache), "--runs-dir", str(runs), "--fold", "1,2", *TINY,
            "--jobs", "2"]
    assert main(args) == 0
    states = _states(runs / "ablation")
    assert len(states) == 10 and set(states.values()) == {"done"}
    init = json.loads((runs / "ablation" / "fold2" / "two_stage_carry_all" / "fold2" / "stage2" / "init.json").read_text())
    assert "two_stage" in init["init_from"]
    proc = subprocess.run([sys.executable, "-m", "umbenet_cli", *args], capture_output=True, text=True)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout
