"""One writer per run folder (training.run_lock): a held lock refuses a second `train`, a dead
holder's lock is taken over with a note, `eval` / `export` say that a run is still training."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from umbenet_cli.cli import main
from umbenet_cli.training.run_lock import LOCK_NAME, RunLockedError, process_start, take, training_now

ROOT = Path(__file__).resolve().parents[2]


def hold(run_dir: Path) -> subprocess.Popen:
    """Another process holding ``run_dir``'s lock until it is killed (as `umbenet train` does)."""
    code = textwrap.dedent(f"""
        import sys, time
        from umbenet_cli.training.run_lock import take
        lock = take({str(run_dir)!r}, command="umbenet train --name holder")
        print("held", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout.readline().strip() == "held"
    return proc


def gone_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_held_lock_refuses_and_names_its_holder(tmp_path):
    run = tmp_path / "r"
    holder = hold(run)
    try:
        with pytest.raises(RunLockedError) as err:
            take(run, wait_s=0.2)
        msg = str(err.value)
        assert f"process {holder.pid} on host {socket.gethostname()}, since " in msg
        assert "umbenet train --name holder" in msg and "--resume" in msg
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the killed holder's lock: taken over, with a note naming it.
    with take(run) as lock:
        assert f"from process {holder.pid} on host" in lock.note and "which is gone" in lock.note
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (run / LOCK_NAME).exists()  # released: the file is removed
    with take(tmp_path / "runs" / "new"):
        pass
    assert not (tmp_path / "runs").exists()  # and the folders the lock made, when nothing else was written


def test_a_lock_left_by_a_dead_or_reused_pid_is_taken_over(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    for pid, start in ((gone_pid(), None), (os.getppid(), "another-boot:123")):  # a reused pid: alive, other start
        (run / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": time.time(),
                                                 "proc_start": start, "command": ""}))
        with take(run) as lock:
            assert f"from process {pid} on host" in lock.note
    assert run.is_dir()  # a folder that was there before stays


def test_a_live_recorded_holder_wins_even_without_its_flock(tmp_path):
    """A filesystem without working flock (or a removed file): the recorded live process wins."""
    run = tmp_path / "r"
    run.mkdir()
    (run / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "since": time.time(),
                                             "proc_start": process_start(os.getppid()), "command": ""}))
    with pytest.raises(RunLockedError, match=f"process {os.getppid()} on host"):
        take(run, wait_s=0)


def test_another_hosts_lock_is_taken_over_with_what_cannot_be_checked(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "node-b", "since": time.time(), "proc_start": None,
                                             "command": ""}))
    assert training_now(run) is None  # nobody holds its flock (no run.json either)
    with take(run) as lock:
        assert "on host node-b" in lock.note and "local_lock" in lock.note and "on node-b" in lock.note


def test_die_with_launcher_exits_when_the_launcher_is_already_gone():
    """A worker whose launcher died before it asked for the parent-death signal ends at once."""
    code = "from umbenet_cli.training.distributed import die_with_launcher\ndie_with_launcher()\nprint('alive')"
    env = dict(os.environ, PYTHONPATH=str(ROOT), UMBENET_LAUNCHER_PID=str(gone_pid()))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1 and "alive" not in proc.stdout
    env["UMBENET_LAUNCHER_PID"] = str(os.getpid())  # its parent: it goes on
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and "alive" in proc.stdout


def test_train_eval_export_on_a_run_being_trained(train_tiny_run, sample_cache, tmp_path, capsys):
    run = train_tiny_run(tmp_path)
    holder = hold(run)
    try:
        capsys.readouterr()
        assert main(["train", "--runs-dir", str(tmp_path), "--name", "r", "--resume"]) == 2
        err = capsys.readouterr().err.replace("\n", " ")
        assert f"is being trained by process {holder.pid}" in err and "Traceback" not in err
        assert main(["export", str(run), "--out", str(tmp_path / "model")]) == 0
        err = capsys.readouterr().err.replace("\n", " ")
        assert f"warning: r is still being trained (process {holder.pid} on host" in err
        assert "exporting its finished 'best' checkpoint as it is now" in err
        assert training_now(run / "fold1" / "onestage" / "checkpoints" / "best").startswith("r is still being trained")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert training_now(run) is None  # the holder is gone
    capsys.readouterr()
    assert main(["train", "--runs-dir", str(tmp_path), "--name", "r", "--resume"]) == 0
    assert "took over the run's lock from process" in capsys.readouterr().err.replace("\n", " ")
    assert not (run / LOCK_NAME).exists()
