"""A job's exit code and log -> its state and the one line that says why it failed."""
from __future__ import annotations

import signal

from umbenet_cli.study.jobs import error_line, exit_text, outcome


def test_exit_codes():
    assert outcome(0) == "done"
    assert outcome(130) == outcome(-signal.SIGINT) == "interrupted"  # Ctrl-C, as train exits on it
    assert outcome(2) == outcome(-signal.SIGKILL) == "failed"  # the OOM killer is no interruption
    assert exit_text(2) == "exit 2" and exit_text(-signal.SIGKILL) == "killed by SIGKILL"


def test_the_error_line_keeps_its_reasons(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("$ umbenet train --name x\ndevice: cpu\nerror: cannot train:\n  - --stage 'x': choose one\n"
                   "  - --val-fraction 0.7: must be in (0, 0.5)\nafter\n")
    assert error_line(log) == ("error: cannot train: - --stage 'x': choose one - --val-fraction 0.7: must be in (0, 0.5)")
    log.write_text("$ umbenet eval x\nsome output\nlast words\n")
    assert error_line(log) == "last words"
    assert error_line(tmp_path / "missing.log") == "(no log)"


def test_gpus_are_shared_out_one_group_per_job(tmp_path, monkeypatch):
    import pytest

    from umbenet_cli.study.jobs import commands, job_env
    from umbenet_cli.study.local import LocalOptions, StudyError, slots
    from umbenet_cli.study.matrix import FoldRun

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert slots(LocalOptions(jobs=0, gpus=(0, 1, 2, 3))) == [([0], 4), ([1], 4), ([2], 4), ([3], 4)]
    assert slots(LocalOptions(jobs=0, gpus=(0, 1, 2, 3), gpus_per_job=2)) == [([0, 1], 8), ([2, 3], 8)]
    assert slots(LocalOptions(jobs=1, gpus=(4, 5))) == [([4], 16)]
    assert slots(LocalOptions(jobs=4)) == [(None, 4)] * 4  # CPU: the threads divided among the jobs
    with pytest.raises(StudyError, match="groups of 2"):
        slots(LocalOptions(gpus=(0, 1, 2), gpus_per_job=2))
    env = job_env([2, 3], 8)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and env["OMP_NUM_THREADS"] == "8"
    fr = FoldRun("fold1/x", "x", 1, 11, tmp_path / "x", ("train", "--name", "x"), None)
    train, evaluate = commands(fr, gpus=2)  # the job sees its GPUs as 0 and 1
    assert train[-2:] == ("--gpus", "0,1") and evaluate == ("eval", str(tmp_path / "x"), "--device", "cuda")


def test_a_job_stops_on_one_sigint_even_when_its_launcher_ignores_sigint(tmp_path, sample_cache):
    """`nohup umbenet study run ... &` starts the launcher with SIGINT ignored, and its children
    inherit that: the job still stops on the study's SIGINT (exit 130, its checkpoint kept) instead
    of being killed after the grace time."""
    import signal
    import time

    from umbenet_cli.study import jobs as J

    command = ("train", "--cache", str(sample_cache), "--runs-dir", str(tmp_path / "runs"), "--preset", "tiny",
               "--name", "bg", "--fold", "1", "--logger", "none", "--set", "optim.max_epochs=100000",
               "--set", "optim.stop_train_accuracy=1.0")
    log = tmp_path / "job.log"
    was = signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a background shell gives its jobs
    try:
        proc = J.start(command, log, J.job_env())
    finally:
        signal.signal(signal.SIGINT, was)
    try:
        deadline = time.monotonic() + 120
        while "epoch 1:" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()[-2000:]
        t0 = time.monotonic()
        assert J.interrupt(proc, grace_s=30) == 130, log.read_text()[-2000:]
        assert time.monotonic() - t0 < 25  # stopped by the SIGINT, not by the SIGKILL after the grace
        assert "interrupted" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
