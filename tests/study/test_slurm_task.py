"""The Slurm task's pre-emption path: stop the command, mark the run interrupted, requeue itself."""
from __future__ import annotations

import pickle
import subprocess
import sys

import submitit

from umbenet_cli.study import state as S
from umbenet_cli.study.matrix import expand
from umbenet_cli.study.plans import load_plan
from umbenet_cli.study.slurm import StudyTask, arrays


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
