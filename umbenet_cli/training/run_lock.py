"""One writer per run folder: ``umbenet train`` holds ``runs/<name>/train.lock`` for its whole life.

The lock is an ``flock`` on the open file, so the kernel releases it when the holder dies however
it dies (``kill -9`` included); the file's text says who holds it (pid, host, start time, command)
for the message a second ``train`` prints. A holder that ends normally removes the file; one that
was killed leaves it behind, and the next ``train`` takes it over with a note.

Who holds it: the process the user started. With ``--nproc N`` / ``--gpus`` that is the launching
process (its workers never take it); under a ``torchrun`` the user started, rank 0.

What can be checked: on this host, whether the recorded process is still alive (its pid and its
start time from ``/proc/<pid>/stat``, so a reused pid is not taken for the holder). On a run folder
shared between hosts (NFS) the flock is what tells: NFS passes it to the server, which drops a
dead client's locks when its lease ends (about 90 s); a filesystem that keeps locks per host
(``local_lock=flock``) cannot tell, and the note says so.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from umbenet_cli.errors import UserError

LOCK_NAME = "train.lock"


class RunLockedError(UserError, RuntimeError):
    """Another ``umbenet train`` is writing into this run folder; names it and the fix."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a run's lock, as written in the lock file."""

    pid: int
    host: str
    since: float  # time.time() when it took the lock
    proc_start: str | None = None  # /proc/<pid>/stat start time + boot id: tells a reused pid apart
    command: str = ""

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.since))
        return f"process {self.pid} on host {self.host}, since {when}" + (f" (`{self.command}`)" if self.command else "")

    def here(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """Still running (on this host: the same pid with the same start time)."""
        if not self.here():
            raise ValueError("alive() checks processes of this host only")
        return process_start(self.pid) == self.proc_start if self.proc_start else _pid_exists(self.pid)


def process_start(pid: int) -> str | None:
    """``<boot id>:<start ticks>`` of a live process (Linux), or None: unchanged for the process's
    life, different for a later process given the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # The name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    return f"{boot}:{stat[stat.rindex(')') + 2:].split()[19]}"


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text() or "null")
        return Holder(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def lock_path(run_dir: Path) -> Path:
    return Path(run_dir) / LOCK_NAME


class RunLock:
    """The held lock of one run folder; ``release()`` (or the end of a ``with``) gives it back."""

    def __init__(self, run_dir: Path, fd: int, made: list[Path], note: str | None) -> None:
        self.run_dir, self.fd, self.made, self.note = Path(run_dir), fd, made, note

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if self.fd < 0:
            return
        path = lock_path(self.run_dir)
        try:  # removed while still held: a waiting process then finds the file gone and retries
            path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = -1
        for folder in self.made:  # a run that stopped before writing anything leaves no folder behind
            try:
                folder.rmdir()
            except OSError:
                break


def take(run_dir: Path, command: str = "", wait_s: float = 1.0) -> RunLock:
    """Hold the lock of ``run_dir`` (made if missing) for this process; RunLockedError (exit 2)
    when a live process holds it. ``RunLock.note``: a line to show when a dead holder's lock was
    taken over. ``wait_s``: how long a held lock is retried (``eval`` may probe it for an instant)."""
    import fcntl

    run_dir = Path(run_dir)
    made = [d for d in (run_dir, *run_dir.parents) if not d.exists()]  # deepest first
    run_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(run_dir)
    deadline = time.monotonic() + wait_s
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise RunLockedError(_held_message(run_dir, _read(path))) from None
        # The holder before us removes the file as it releases: the lock must be on the file
        # that is at the path now, or two processes could each hold a lock of their own.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        before = _read(path)
        note = None
        if before is not None:
            if before.here() and before.pid != os.getpid() and before.alive():
                # The flock is free, yet the process that wrote the file lives: this filesystem
                # does not lock (or someone removed the file); the recorded holder wins.
                raise RunLockedError(_held_message(run_dir, before))
            note = _takeover_note(before)
        me = Holder(pid=os.getpid(), host=socket.gethostname(), since=time.time(),
                    proc_start=process_start(os.getpid()), command=command)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(me)) + "\n").encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return RunLock(run_dir, fd, made, note)


def _held_message(run_dir: Path, holder: Holder | None) -> str:
    who = holder.describe() if holder else "another process (starting: it has not written its name yet)"
    fix = ("wait for it to finish, or stop it (Ctrl-C) and then continue the run with --resume; "
           "or train under another --name")
    return f"{run_dir} is being trained by {who}: one run folder takes one `umbenet train` at a time; {fix}"


def _takeover_note(before: Holder) -> str:
    if before.here():
        return (f"took over the run's lock from {before.describe()}, which is gone (killed?); "
                f"the run goes on from its last complete checkpoint")
    return (f"took over the run's lock from {before.describe()}: its lock was released, so it has ended "
            f"(killed?) - unless this filesystem keeps locks per host (NFS mounted with local_lock), "
            f"which this host cannot check: make sure nothing trains this run on {before.host}")


def training_now(path: str | Path) -> str | None:
    """A line saying that the run holding ``path`` (a run, stage or checkpoint folder) is still being
    trained, by whom; None when it is not (or ``path`` belongs to no run)."""
    path = Path(path).resolve()
    for folder in (path, *path.parents[:4]):
        if (folder / "run.json").is_file():
            break
    else:
        return None
    holder = _read(lock_path(folder))
    if holder is None:
        return None
    if holder.here():
        if not holder.alive():
            return None
        return f"{folder.name} is still being trained ({holder.describe()})"
    if not _held(lock_path(folder)):
        return None
    return f"{folder.name} is still being trained ({holder.describe()}, per its lock)"


def _held(path: Path) -> bool:
    """Whether some process holds ``path``'s flock (probed for an instant)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
