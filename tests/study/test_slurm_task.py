"""The Slurm task's pre-emption path: stop the command, mark the run interrupted, requeue itself."""
from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import submitit

from umbenet_cli.study import state as S
from umbenet_cli.study.matrix import expand
from umbenet_cli.study.plans import load_plan
from umbenet_cli.study.slurm import StudyTask, arrays
from umbenet_cli.study.state import StudyError


def _study(tmp_path):
    plan = load_plan("ablation", "tiny", {})
    runs = expand(plan, tmp_path / "ablation", tmp_path / "cache", "tiny", {}, (1, 2), (11,))
    S.reconcile(tmp_path / "ablation", {"name": plan.name, "source": plan.source, "runs": []}, {}, runs, False)
    return tmp_path / "ablation", [r.key for r in runs]


def test_checkpoint_stops_the_command_and_requeues_the_same_task(tmp_path):
    study, keys = _study(tmp_path)
    S.update(study, "fold1/two_stage", state="running")
    task = StudyTask(study, gpus=1)
    # A stand-in for the running `umbenet train`: it exits 130 on SIGINT, as train does.
    child = subprocess.Popen([sys.executable, "-c", "import time\ntry:\n print('ready', flush=True)\n time.sleep(60)\n"
                              "except KeyboardInterrupt:\n raise SystemExit(130)"], stdout=subprocess.PIPE,
                             text=True, start_new_session=True)
    assert child.stdout.readline().strip() == "ready"
    task._started(child)
    delayed = task.checkpoint("fold1/two_stage")
    assert task._proc.returncode == 130
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.args == ("fold1/two_stage",) and delayed.function.gpus == 1
    assert S.read(study)["runs"]["fold1/two_stage"]["state"] == "interrupted"
    assert pickle.loads(pickle.dumps(task))._proc is None  # the child never travels with the task


def test_a_task_whose_stage1_run_is_not_done_fails_naming_it(tmp_path):
    study, keys = _study(tmp_path)
    S.update(study, "fold2/two_stage", state="failed", error="boom")
    assert StudyTask(study, gpus=0)("fold2/two_stage_carry_all") == "failed"
    rec = S.read(study)["runs"]["fold2/two_stage_carry_all"]
    assert rec["state"] == "failed" and "fold2/two_stage's stage 1, which is failed" in rec["error"]


def test_runs_that_start_from_another_go_in_the_second_array(tmp_path):
    study, keys = _study(tmp_path)
    S.update(study, "fold1/one_stage", state="done")
    first, second = arrays(S.read(study), keys)
    assert first == ["fold1/two_stage", "fold1/one_stage_all_modalities", "fold2/two_stage", "fold2/one_stage",
                     "fold2/one_stage_all_modalities"]
    assert second == ["fold1/two_stage_carry_all", "fold1/two_stage_carry_none", "fold2/two_stage_carry_all",
                      "fold2/two_stage_carry_none"]


def _fake_squeue(tmp_path, monkeypatch, listed: str = "", rc: int = 0, stderr: str = ""):
    """A `squeue` on PATH that lists ``listed`` (one job id a line) and exits ``rc``; it records
    its arguments."""
    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    script = bin_ / "squeue"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'squeue.args'}\nprintf '{listed}'\n"
                      f"printf '{stderr}' >&2\nexit {rc}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:/usr/bin:/bin")


def _submitted(study, jobs: dict[str, str], state: str = "pending") -> None:
    for key, job in jobs.items():
        S.update(study, key, state=state, slurm_submission="s1", slurm_job=job)


def test_runs_with_live_slurm_jobs_stay_theirs_and_gone_ones_come_back(tmp_path, monkeypatch):
    from umbenet_cli.study.slurm import held, release

    study, keys = _study(tmp_path)
    _submitted(study, {"fold1/two_stage": "77_0", "fold1/one_stage": "77_1"}, state="running")
    S.update(study, "fold2/two_stage", slurm_submission="s0", slurm_job="70_0", state="done")  # finished: not held
    assert held(S.read(study), keys) == {"fold1/two_stage": "77_0", "fold1/one_stage": "77_1"}
    _fake_squeue(tmp_path, monkeypatch, listed="77_0\\n77_2\\n")
    assert release(study, keys, take_over=False) == {"fold1/two_stage": "77_0"}
    assert "--noheader --array --format=%i --jobs 77" in (tmp_path / "squeue.args").read_text()
    runs = S.read(study)["runs"]
    assert runs["fold1/two_stage"]["slurm_job"] == "77_0" and runs["fold1/two_stage"]["state"] == "running"
    # 77_1 left the queue while "running" (scancel, a node lost): the study's again, to resume.
    assert runs["fold1/one_stage"]["state"] == "interrupted" and runs["fold1/one_stage"]["slurm_job"] is None
    assert "fold1/one_stage: Slurm job 77_1 is gone" in (study / "study.log").read_text()
    # squeue says a job id it no longer knows is invalid: gone too.
    _fake_squeue(tmp_path, monkeypatch, rc=1, stderr="slurm_load_jobs error: Invalid job id specified\\n")
    assert release(study, keys, take_over=False) == {} and held(S.read(study), keys) == {}


def test_a_local_launcher_is_refused_while_slurm_may_hold_its_runs(tmp_path, monkeypatch):
    from umbenet_cli.study.slurm import held, refuse_if_held

    study, keys = _study(tmp_path)
    _submitted(study, {"fold1/two_stage": "77_0"})
    _fake_squeue(tmp_path, monkeypatch, listed="77_0\\n")
    with pytest.raises(StudyError, match=r"1 fold-run\(s\) of .* are with Slurm job 77_0, still queued or running "
                                         r"\(fold1/two_stage\): wait for them .*or cancel them \(scancel\)"):
        refuse_if_held(study, keys, take_over=False)
    # The controller cannot be reached, or there is no squeue here: it cannot be told, so it is refused...
    _fake_squeue(tmp_path, monkeypatch, rc=1, stderr="slurm_load_jobs error: Unable to contact slurm controller\\n")
    with pytest.raises(StudyError, match=r"`squeue` cannot be run here.*pass --take-over"):
        refuse_if_held(study, keys, take_over=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(StudyError, match=r"submitted to Slurm \(job 77_0\).*login node.*--take-over"):
        refuse_if_held(study, keys, take_over=False)
    assert held(S.read(study), keys) == {"fold1/two_stage": "77_0"}
    # ... unless taken over, which the log says.
    refuse_if_held(study, keys, take_over=True)
    assert held(S.read(study), keys) == {}
    assert "fold1/two_stage: Slurm job 77_0 taken over (--take-over)" in (study / "study.log").read_text()


def test_a_task_of_a_submission_that_no_longer_holds_its_run_does_nothing(tmp_path):
    study, keys = _study(tmp_path)
    S.update(study, "fold1/two_stage", slurm_submission="new", slurm_job="78_0")
    before = S.read(study)["runs"]["fold1/two_stage"]
    assert StudyTask(study, gpus=0, submission="old")("fold1/two_stage") == "taken over"
    assert S.read(study)["runs"]["fold1/two_stage"] == before  # no attempt, no state change
    assert not (study / "logs").exists()  # no command started
    task = pickle.loads(pickle.dumps(StudyTask(study, gpus=0, submission="new")))
    assert task.submission == "new"  # a requeued task keeps its submission


def test_a_second_submission_leaves_the_runs_live_jobs_hold(tmp_path, monkeypatch):
    from rich.console import Console

    from umbenet_cli.study.slurm import SlurmOptions, submit

    study, keys = _study(tmp_path)
    for key in keys:
        if key not in ("fold1/two_stage", "fold1/one_stage"):
            S.update(study, key, state="done")
    _submitted(study, {"fold1/two_stage": "77_0", "fold1/one_stage": "77_1"})
    _fake_squeue(tmp_path, monkeypatch, listed="77_0\\n77_1\\n")
    out = tmp_path / "out.txt"
    with open(out, "w") as fh:
        assert submit(study, keys, SlurmOptions(time="5"), Console(file=fh, width=200),
                      cluster="local") == []
    text = out.read_text()
    assert "2 fold-run(s) left to Slurm jobs 77_0, 77_1, still queued or running" in text
    assert "nothing to submit: every run of the study is done or with Slurm already" in text
    assert not (study / "slurm").exists()  # nothing submitted
