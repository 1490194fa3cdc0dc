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
# Two quick one-stage runs: enough to interrupt the study between its first and its last.
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
    assert main(["study", "run", "ablation", "--cache", str(sample_cache), "--runs-dir", str(tmp_path / "runs"),
                 "--launcher", "slurm", "--gpus", "0,1", "--dry-run"]) == 2
    assert "--slurm-gpus-per-job" in capsys.readouterr().err


def test_interrupt_then_the_same_command_finishes_the_rest(sample_cache, tmp_path):
    """SIGINT once the first run is done: exit 130, no traceback; the same command finishes the
    others and leaves the finished run's files as they were; once more, it does nothing.
    Worth trimming: 40 s on 2 quiet cores, up to 5 minutes when they are busy, mostly `umbenet eval`
    (its imports and 14 confusion PNGs per run)."""
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
    # `umbenet report runs/STUDY`: the plan's runs, folds merged.
    assert main(["report", str(study), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Runs of the plan" in md and "| a | V+A+T | one |" in md and "| b | V+T | one |" in md


def test_slurm_launcher_through_submitits_local_executor(sample_cache, tmp_path):
    """Two real train + eval jobs: 20 s on 2 quiet cores, about 2 minutes when they are busy."""
    from umbenet_cli.study.run import StudyRequest, prepare
    from umbenet_cli.study.slurm import SlurmOptions, submit

    plan = tmp_path / "two.toml"
    plan.write_text(QUICK_PLAN)  # runs a and b
    req = StudyRequest(plan=str(plan), cache=str(sample_cache), runs_dir=str(tmp_path / "runs"), fold="2",
                       preset="tiny", launcher="slurm", slurm=SlurmOptions(time="15"))
    study, data, keys = prepare(req)
    jobs = submit(study, keys, req.slurm, Console(file=open(os.devnull, "w")), cluster="local")
    assert len(jobs) == 2
    assert [job.result() for job in jobs] == ["done", "done"]
    assert _states(study) == {"fold2/a": "done", "fold2/b": "done"}
    assert (study / "fold2" / "b" / "eval-test.json").is_file()
    runs = json.loads((study / "study.json").read_text())["runs"]
    assert [runs[k]["slurm_job"] for k in keys] == [job.job_id for job in jobs]  # what squeue is asked about
    assert len({runs[k]["slurm_submission"] for k in keys}) == 1


def test_ablation_on_two_folds(sample_cache, tmp_path):
    """The issue's acceptance: 10 fold-runs, each a real train + eval (3 minutes on 2 busy cores)."""
    runs = tmp_path / "runs"
    args = ["study", "run", "ablation", "--cache", str(sample_cache), "--runs-dir", str(runs), "--fold", "1,2", *TINY,
            "--jobs", "2"]
    assert main(args) == 0
    states = _states(runs / "ablation")
    assert len(states) == 10 and set(states.values()) == {"done"}
    fold2 = runs / "ablation" / "fold2"
    for arm, rule, carried in (("two_stage_carry_all", "all", 6), ("two_stage_carry_none", "none", 0)):
        init = json.loads((fold2 / arm / "fold2" / "stage2" / "init.json").read_text())
        assert "two_stage" in init["init_from"] and init["rule"] == rule and init["carried"] == carried
        assert not (fold2 / arm / "fold2" / "stage1").exists()  # stage 1 is two_stage's, not trained again
    two = json.loads((fold2 / "two_stage" / "run.json").read_text())
    for arm, all_mods in (("one_stage", False), ("one_stage_all_modalities", True)):
        opts = json.loads((fold2 / arm / "run.json").read_text())
        assert opts["stage"] == "one" and opts["all_modalities"] is all_mods
        assert opts["model"]["optim"]["max_epochs"] == 2 * two["model"]["optim"]["max_epochs"]  # equal budgets
    proc = subprocess.run([sys.executable, "-m", "umbenet_cli", *args], capture_output=True, text=True)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout


def test_the_slurm_script_submitit_would_write(tmp_path, monkeypatch):
    """What sbatch receives for the second array (no cluster needed: submitit writes the script)."""
    from umbenet_cli.study.slurm import SlurmOptions, StudyError, make_executor

    with pytest.raises(StudyError, match="no Slurm on this machine"):
        make_executor(tmp_path, SlurmOptions(), cluster="slurm")
    bin_dir = tmp_path / "bin"  # submitit looks for srun to believe it is on a cluster
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    opts = SlurmOptions(partition="gpu", time="2:00:00", gpus_per_job=2, array_parallelism=4,
                        extra={"account": "emo"})
    executor = make_executor(tmp_path, opts, cluster="slurm", after="1234")
    script = executor._executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=120", "#SBATCH --gpus-per-node=2", "#SBATCH --account=emo",
                 "#SBATCH --dependency=afterany:1234", "#SBATCH --signal=USR2@"):
        assert line in script, line


def test_a_failing_run_is_retried_and_its_dependents_are_not_started(sample_cache, tmp_path, capsys):
    plan = tmp_path / "fails.toml"
    plan.write_text('[[run]]\nname = "bad"\nexclude_classes = "nosuchclass"\n'
                    '[[run]]\nname = "child"\nstage = "2"\ninit_from = "bad"\n')
    runs = tmp_path / "runs"
    assert main(["study", "run", str(plan), "--cache", str(sample_cache), "--runs-dir", str(runs), "--fold", "1",
                 "--preset", "tiny", "--retry", "1"]) == 1
    out = capsys.readouterr()
    record = json.loads((runs / "fails" / "study.json").read_text())["runs"]
    assert record["fold1/bad"]["state"] == "failed" and record["fold1/bad"]["attempts"] == 2
    assert "nosuchclass" in record["fold1/bad"]["error"] and record["fold1/bad"]["error"].startswith("train exit 2")
    assert record["fold1/child"]["state"] == "pending" and record["fold1/child"]["attempts"] == 0
    assert "fold1/child not started: it starts from fold1/bad, which is failed" in out.out
    assert "retrying (1 more try left)" in out.out and "Traceback" not in out.out + out.err


def _commands_on(folder: Path) -> list[int]:
    """Pids of live processes whose command line names ``folder`` (zombies excluded)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder) in (proc / "cmdline").read_bytes().decode(errors="replace") \
                    and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_launcher_ends_its_jobs(sample_cache, tmp_path):
    """The study's jobs run in their own sessions (so Ctrl-C reaches the launcher alone): a
    `kill -9` of the launcher must still end them, within 10 s, and nothing is written after."""
    plan = tmp_path / "long.toml"
    plan.write_text('name = "long"\n[[run]]\nname = "a"\nstage = "one"\nlogger = "none"\n')
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "umbenet_cli", "study", "run", str(plan), "--cache",
                             str(sample_cache), "--runs-dir", str(runs), "--fold", "1", *TINY[:2], "--set",
                             "optim.max_epochs=500", "--set", "optim.stop_train_accuracy=1.0", "--jobs", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = None
    deadline = time.time() + 300
    while metrics is None:
        assert proc.poll() is None and time.time() < deadline
        found = list((runs / "long").rglob("metrics.jsonl"))
        metrics = found[0] if found else None
        time.sleep(0.2)
    assert _commands_on(runs)  # the job's `umbenet train` runs
    proc.kill()
    proc.wait()
    deadline = time.time() + 10
    while _commands_on(runs) and time.time() < deadline:
        time.sleep(0.2)
    assert not _commands_on(runs), "a job outlived its launcher"
    size = metrics.stat().st_size
    time.sleep(2.0)
    assert metrics.stat().st_size == size


def test_one_launcher_per_study_local_and_slurm(sample_cache, tmp_path, capsys, monkeypatch):
    """A Slurm submission while a local launcher works on the study is refused; a local launcher
    on runs an earlier submission's live jobs hold is refused, naming them, and starts nothing."""
    from umbenet_cli.study import state as S
    from umbenet_cli.study.run import StudyRequest, prepare, run_study
    from umbenet_cli.study.state import StudyError

    plan = tmp_path / "two.toml"
    plan.write_text(QUICK_PLAN)
    args = ["study", "run", str(plan), "--cache", str(sample_cache), "--runs-dir", str(tmp_path / "runs"),
            "--fold", "2", "--preset", "tiny"]
    study, _, keys = prepare(StudyRequest(plan=str(plan), cache=str(sample_cache), runs_dir=str(tmp_path / "runs"),
                                          fold="2", preset="tiny"))
    quiet = Console(file=open(os.devnull, "w"))
    with S.launcher_lock(study):
        with pytest.raises(StudyError, match="another `umbenet study run` is working on"):
            run_study(StudyRequest(plan=str(plan), cache=str(sample_cache), runs_dir=str(tmp_path / "runs"),
                                   fold="2", preset="tiny", launcher="slurm"), quiet, quiet)
    assert not (study / "slurm").exists()
    S.update(study, "fold2/a", slurm_submission="s1", slurm_job="91_0")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "squeue").write_text("#!/bin/sh\necho 91_0\n")
    (bin_ / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:{os.environ['PATH']}")
    capsys.readouterr()
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "1 fold-run(s) of" in err and "are with Slurm job 91_0, still queued or running (fold2/a)" in err, err
    assert _states(study) == {"fold2/a": "pending", "fold2/b": "pending"} and not (study / "logs").exists()
