"""Several training processes (gloo on the CPU): hand-overs between ranks, agreed decisions, failures.

The workers are processes started by torchrun, so a test changes their behaviour through a
``sitecustomize.py`` on PYTHONPATH: Python imports it at start-up in every process, and the one
here patches only processes that have a RANK (the workers, not the launcher).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .test_train_e2e import metrics  # metrics.jsonl lines without their timings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_fold_cache(tmp_path_factory):
    """A small synthetic cache with two folds (so one run hands over fold -> fold)."""
    from umbenet_cli.data.synthetic import SyntheticSpec, write_synthetic_cache
    from umbenet_cli.model import load_backbone
    from umbenet_cli.model.config import TINY_BACKBONE

    out = tmp_path_factory.mktemp("two-fold-cache")
    spec = SyntheticSpec(classes=("happy", "sad", "neutral"), clips_per_class=12, folds=2)
    return write_synthetic_cache(out, spec, TINY_BACKBONE, load_backbone(TINY_BACKBONE).fingerprint())


def _command(cache: Path, runs: Path, patch: str, *args: str) -> tuple[list[str], dict]:
    """``umbenet train --nproc 2`` and its environment, with ``patch`` executed in each worker first."""
    hook = runs / "hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text("import os\nif 'RANK' in os.environ:\n" + textwrap.indent(
        textwrap.dedent(patch), "    "))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), str(ROOT)]), COLUMNS="200")
    return [sys.executable, "-m", "umbenet_cli.cli", "train", "--cache", str(cache), "--runs-dir", str(runs),
            "--preset", "tiny", "--nproc", "2", *args], env


def launch(cache: Path, runs: Path, patch: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """``umbenet train --nproc 2`` as a user runs it, with ``patch`` executed in each worker first."""
    argv, env = _command(cache, runs, patch, *args)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)


SLOW_RANK0_SAVE = """
if os.environ["RANK"] == "0":
    import time
    from umbenet_cli.training import loop
    real = loop.save_checkpoint
    def slow(*a, **k):
        time.sleep(1.0)  # rank 1 reaches the next stage / fold long before the files exist
        return real(*a, **k)
    loop.save_checkpoint = slow
"""


def test_rank0_slow_save_two_stages_two_folds(two_fold_cache, tmp_path):
    proc = launch(two_fold_cache, tmp_path, SLOW_RANK0_SAVE, "--name", "r", "--fold", "all", "--stage", "both",
                  "--set", "optim.max_epochs=1", "--set", "optim.batch_size=4")
    assert proc.returncode == 0, proc.stderr[-4000:]
    for fold in (1, 2):
        for stage in ("stage1", "stage2"):
            folder = tmp_path / "r" / f"fold{fold}" / stage
            assert json.loads((folder / "result.json").read_text())["epochs"] == 1
            assert (folder / "checkpoints" / "best" / "COMPLETE").is_file()
        assert (tmp_path / "r" / f"fold{fold}" / "stage2" / "init.json").is_file()
    assert_counting_pass_is_whole(tmp_path / "r", fold=2)
    assert "training summary" in proc.stderr + proc.stdout
    # Rank 0 alone reports (rank 1 printed each line again before).
    assert (proc.stderr + proc.stdout).count("fold 2 stage1: ") == 1
    assert (proc.stderr + proc.stdout).count("fold 2 stage2: ") == 2  # what it carried, then its clips
    assert "device: cpu" in proc.stderr + proc.stdout
    # Resume of a finished run: every rank reuses every stage (rank 0's view, broadcast).
    again = launch(two_fold_cache, tmp_path, SLOW_RANK0_SAVE, "--name", "r", "--resume")
    assert again.returncode == 0, again.stderr[-4000:]
    assert (again.stderr + again.stdout).count("reused") == 4


def assert_counting_pass_is_whole(run: Path, fold: int) -> None:
    """The 2-process counting pass (each rank every other batch, counts summed) saw every training
    clip once per modality and counted what one process counts on the same checkpoint."""
    import numpy as np

    from umbenet_cli.data.cache_read import read_features
    from umbenet_cli.model import load_backbone
    from umbenet_cli.model.checkpoint import load_weights
    from umbenet_cli.model.umbenet import UMBEnet
    from umbenet_cli.training.distributed import DistInfo
    from umbenet_cli.training.options import TrainOptions
    from umbenet_cli.training.run import available_modalities
    from umbenet_cli.training.two_stage import count_selections
    from umbenet_cli.training.data import make_splits

    opts = TrainOptions.from_json((run / "run.json").read_text())
    init = json.loads((run / f"fold{fold}" / "stage2" / "init.json").read_text())
    table = read_features(opts.cache)
    train = make_splits(table, fold, opts.val_fraction, opts.seed).train
    available = available_modalities(table, opts)
    model = UMBEnet(opts.model, backbone=load_backbone(opts.model.backbone))
    load_weights(model, run / f"fold{fold}" / "stage1" / "checkpoints" / "best")
    one = count_selections(model, table, train, available, DistInfo(), opts.model.optim.batch_size)
    for m, code, j in (("V", 1, 0), ("A", 2, 1), ("T", 4, 2)):
        assert init["counted_clips"][m] == int(available[train, j].sum()) == int(one.clips[code])
        assert init["stage1_counts"][m] == one.counts[code].tolist()
    assert np.asarray(init["stage1_counts"]["V"]).sum() == opts.model.pool.top_k * init["counted_clips"]["V"]


SLOW_RANK1_START = """
if os.environ["RANK"] == "1":
    import time
    from umbenet_cli.training import run
    real = run.prepare
    def late(*a, **k):
        time.sleep(4.0)  # rank 0 has written the new run's run.json by then
        return real(*a, **k)
    run.prepare = late
"""


def test_a_late_rank_joins_the_new_run(two_fold_cache, tmp_path):
    """Rank 1 reaching its input checks after rank 0 wrote run.json: it must not take the new run for
    an existing one ("already holds a run"), which failed the whole launch before."""
    proc = launch(two_fold_cache, tmp_path, SLOW_RANK1_START, "--name", "r", "--fold", "1", "--stage", "1",
                  "--set", "optim.max_epochs=1", "--set", "optim.batch_size=4")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((tmp_path / "r" / "fold1" / "stage1" / "result.json").read_text())["epochs"] == 1


RANK_DEPENDENT_VALIDATION = """
from umbenet_cli.training import loop
real = loop.evaluate
rank = int(os.environ["RANK"])
def skewed(*a, **k):
    out = real(*a, **k)
    # Rank 1 would see validation get worse every epoch (plateau -> lr cut -> min_lr stop) while
    # rank 0 sees it improve; undecided, rank 1 stops and rank 0 waits in an all-reduce forever.
    calls = skewed.calls = getattr(skewed, "calls", 0) + 1
    return out | {"loss": out["loss"] + (calls if rank == 1 else -calls), "uar": out["uar"] * (1 - rank)}
loop.evaluate = skewed
"""


def test_ranks_take_rank0_validation_decisions(two_fold_cache, tmp_path):
    proc = launch(two_fold_cache, tmp_path, RANK_DEPENDENT_VALIDATION, "--name", "r", "--fold", "1",
                  "--stage", "one", "--set", "optim.max_epochs=4", "--set", "optim.batch_size=4",
                  "--set", "optim.plateau_epochs=1", "--set", "optim.min_lr=1e-3",
                  "--set", "optim.stop_train_accuracy=1.0", timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [json.loads(x) for x in (tmp_path / "r" / "fold1" / "onestage" / "metrics.jsonl").read_text().splitlines()]
    # Rank 0's validation loss falls every epoch: no plateau, lr unchanged, all four epochs run.
    assert [m["epoch"] for m in lines] == [1, 2, 3, 4]
    assert {m["lr"] for m in lines} == {2e-3}


FAIL_ON_RANK1 = """
if os.environ["RANK"] == "1":
    from umbenet_cli.training import loop
    from umbenet_cli.training.options import TrainError
    def broken(self, *a, **k):
        raise TrainError("rank one cannot go on (test)")
    loop.StageTrainer._end_epoch = broken
"""


def test_a_failing_rank_stops_all_with_one_message(two_fold_cache, tmp_path):
    proc = launch(two_fold_cache, tmp_path, FAIL_ON_RANK1, "--name", "r", "--fold", "1", "--stage", "one",
                  "--set", "optim.max_epochs=2", "--set", "optim.batch_size=4", timeout=180)
    err = proc.stderr
    assert proc.returncode == 2, err[-4000:]
    assert "error (process 1 of 2): rank one cannot go on (test)" in err
    assert "training process 1 of 2 failed (exit code 2" in err
    assert "Traceback" not in err and "ChildFailedError" not in err, err[-4000:]


def test_two_runs_at_once_on_one_node(two_fold_cache, tmp_path):
    """Each one-node launch finds its own free port (a fixed 29511 let the second fail at rendezvous)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    procs = [subprocess.Popen([sys.executable, "-m", "umbenet_cli.cli", "train", "--cache", str(two_fold_cache),
                               "--runs-dir", str(tmp_path), "--preset", "tiny", "--nproc", "2", "--name", name,
                               "--fold", "1", "--stage", "one", "--max-steps", "2", "--set", "optim.batch_size=4"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name in ("a", "b")]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    for name in ("a", "b"):
        assert (tmp_path / name / "fold1" / "onestage" / "result.json").is_file()


def test_the_failure_named_is_the_rank_that_failed_on_its_own():
    """torchrun stamps failures in whole seconds: a worker it stopped (SIGTERM) often carries the
    same second as the one that crashed, and must not be named in its place."""
    from types import SimpleNamespace as F

    from umbenet_cli.training.distributed import first_failure

    stopped, aborted = F(exitcode=-15, timestamp=100), F(exitcode=-6, timestamp=100)
    assert first_failure({0: stopped, 1: aborted})[0] == 1
    assert first_failure({0: F(exitcode=-15, timestamp=99), 1: aborted})[0] == 1  # even when stopped earlier
    assert first_failure({0: F(exitcode=2, timestamp=101), 1: F(exitcode=-9, timestamp=100)})[0] == 0
    assert first_failure({0: F(exitcode=1, timestamp=100), 1: F(exitcode=2, timestamp=100)})[0] == 0
    assert first_failure({0: stopped, 1: F(exitcode=-15, timestamp=101)})[0] == 0  # none on its own: earliest


ABORT_RANK1_AFTER_TRAINING = """
if os.environ["RANK"] == "1":
    from umbenet_cli.training import run
    real = run.run_training
    def then_abort(*a, **k):
        real(*a, **k)
        os.abort()  # rank 1 dies of its own signal after its work; rank 0 waits at the last barrier
    run.run_training = then_abort
"""


def test_a_rank_that_dies_after_its_work_is_the_one_named(two_fold_cache, tmp_path):
    proc = launch(two_fold_cache, tmp_path, ABORT_RANK1_AFTER_TRAINING, "--name", "r", "--fold", "1",
                  "--stage", "one", "--max-steps", "2", timeout=180)
    assert proc.returncode == 1, proc.stderr[-4000:]
    assert "training process 1 of 2 failed (signal 6" in proc.stderr, proc.stderr[-4000:]
    assert (tmp_path / "r" / "fold1" / "onestage" / "checkpoints" / "best" / "COMPLETE").is_file()  # work kept


LATE_TEARDOWN = """
if os.environ["RANK"] == "{rank}":
    import time
    from umbenet_cli.training import run
    real = run.run_training
    def late(*a, **k):
        out = real(*a, **k)
        time.sleep(2.0)  # this rank reaches the teardown 2 s after the other
        return out
    run.run_training = late
"""


@pytest.mark.parametrize("rank", ["0", "1"])
def test_either_rank_late_to_teardown(two_fold_cache, tmp_path, rank):
    """A finished run exits 0 whichever rank leaves the process group last (a new run, then the
    resume of the finished run, where rank 0 prints the summary after the last collective)."""
    hook = LATE_TEARDOWN.format(rank=rank)
    first = launch(two_fold_cache, tmp_path, hook, "--name", "r", "--fold", "1", "--stage", "one", "--max-steps", "2")
    assert first.returncode == 0, first.stderr[-4000:]
    again = launch(two_fold_cache, tmp_path, hook, "--name", "r", "--resume")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "terminate called" not in first.stderr + again.stderr


# ------------------------------------------------------------ the launcher killed or interrupted
SLOW_STEPS = """
import time
from umbenet_cli.training import loop
real = loop.StageTrainer._step
def slow(self, *a, **k):
    # The workers are mid-epoch for most of the run (results unchanged); from epoch 3 on, an
    # epoch takes tens of seconds, so a run the tests stop after epoch 1 or 2 cannot have ended
    # first (it did on a busy machine: result.json was there when the kill came).
    time.sleep(0.1 if self.state.epoch < 2 else 2.0)
    return real(self, *a, **k)
loop.StageTrainer._step = slow
"""
UNTIL_STOPPED = ["--fold", "1", "--stage", "one", "--set", "optim.max_epochs=6", "--set", "optim.batch_size=4",
                 "--set", "optim.stop_train_accuracy=1.0", "--save-every", "1", "--logger", "none"]


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead and waiting for its parent's wait, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def start_until(cache: Path, runs: Path, name: str, epochs_done: int) -> tuple[subprocess.Popen, list[int]]:
    """A slowed ``--nproc 2`` run, once ``epochs_done`` epochs are in its metrics.jsonl; (launcher, workers)."""
    argv, env = _command(cache, runs, SLOW_STEPS, "--name", name, *UNTIL_STOPPED)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    metrics = runs / name / "fold1" / "onestage" / "metrics.jsonl"
    deadline = time.time() + 180
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= epochs_done):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-4000:]
        time.sleep(0.05)
    workers = children(proc.pid)
    assert len(workers) == 2, workers
    return proc, workers


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.time() + seconds
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def stage_files(stage: Path) -> tuple[str, str]:
    return (stage / "metrics.jsonl").read_text(), (stage / "checkpoints" / "last" / "meta.json").read_text()


def test_kill_9_of_the_launcher_ends_its_workers_and_resume_matches(two_fold_cache, tmp_path, capsys):
    """kill -9 of the launcher mid-epoch: no worker survives it (they went on writing as orphans,
    and a resume then trained the same epochs a second time beside them); a second train on the
    run is refused while it runs; the resume's metrics and weights are an uninterrupted run's."""
    from safetensors.numpy import load_file

    from umbenet_cli.cli import main

    straight = launch(two_fold_cache, tmp_path, "pass", "--name", "straight", *UNTIL_STOPPED)
    assert straight.returncode == 0, straight.stderr[-4000:]
    proc, workers = start_until(two_fold_cache, tmp_path, "k", epochs_done=2)
    capsys.readouterr()
    assert main(["train", "--runs-dir", str(tmp_path), "--name", "k", "--resume", "--nproc", "2"]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert f"is being trained by process {proc.pid} on host" in err, err
    proc.kill()
    proc.wait()
    assert wait_gone(workers, 10) == []
    stage = tmp_path / "k" / "fold1" / "onestage"
    written = stage_files(stage)
    time.sleep(1.0)
    assert stage_files(stage) == written  # nothing written after the kill
    assert not (stage / "result.json").exists()  # it was killed mid-run
    again = launch(two_fold_cache, tmp_path, "pass", "--name", "k", "--resume")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "took over the run's lock from process" in again.stderr
    a, b = (metrics(tmp_path / name / "fold1" / "onestage") for name in ("straight", "k"))
    assert [m["epoch"] for m in b] == [1, 2, 3, 4, 5, 6]  # each epoch once
    assert a == b
    wa, wb = (load_file(str(tmp_path / name / "fold1" / "onestage" / "checkpoints" / "last" / "model.safetensors"))
              for name in ("straight", "k"))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def test_ctrl_c_of_a_multi_process_run_is_one_line_and_130(two_fold_cache, tmp_path):
    """Ctrl-C reaches the launcher (torchrun gives each worker a session of its own): one
    "interrupted" line, no torchrun traceback, exit 130, no worker left."""
    proc, workers = start_until(two_fold_cache, tmp_path, "c", epochs_done=1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-4000:]
    assert err.count("interrupted: work already finished is kept; to resume, run") == 1, err[-4000:]
    assert f"--name c --resume" in err.replace("\n", "")
    for word in ("Traceback", "SignalException", "failed", "stopped"):
        assert word not in err, err[-4000:]
    assert wait_gone(workers, 10) == []
    assert not (tmp_path / "c" / "train.lock").exists()  # released
