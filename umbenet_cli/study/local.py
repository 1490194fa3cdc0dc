"""The local launcher: ``--jobs N`` fold-runs at once on this machine, each on its own GPUs
(``--gpus 0,1,2,3``, ``--gpus-per-job``) or its share of the CPU threads.

A run starting from another's stage 1 (``after``) waits until that one is done. Ctrl-C (or
SIGTERM) stops every running job with one SIGINT each, waits for them to write their checkpoint,
marks them interrupted and returns 130; the same command resumes them.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from umbenet_cli.study import jobs as J
from umbenet_cli.study import state as S
from umbenet_cli.study.state import StudyError

POLL_S = 0.2


@dataclass(frozen=True)
class LocalOptions:
    jobs: int = 1
    gpus: tuple[int, ...] = ()
    gpus_per_job: int = 1
    retry: int = 0


@dataclass
class _Job:
    key: str
    commands: list[tuple[str, ...]]
    slot: int
    proc: object = None
    phase: int = 0
    started: float = field(default_factory=time.time)


def slots(opts: LocalOptions) -> list[tuple[list[int] | None, int | None]]:
    """(GPUs, CPU threads) of each job slot."""
    if opts.gpus:
        if opts.gpus_per_job < 1 or len(opts.gpus) % opts.gpus_per_job:
            raise StudyError(f"--gpus {','.join(map(str, opts.gpus))} with --gpus-per-job {opts.gpus_per_job}: the GPUs "
                             f"must split into groups of {opts.gpus_per_job}; give a multiple of it")
        groups = [list(opts.gpus[i:i + opts.gpus_per_job]) for i in range(0, len(opts.gpus), opts.gpus_per_job)]
        n = min(opts.jobs, len(groups)) if opts.jobs > 0 else len(groups)
        return [(g, max(1, (os.cpu_count() or 1) // n)) for g in groups[:n]]
    if opts.jobs < 1:
        raise StudyError(f"--jobs {opts.jobs}: give at least 1")
    threads = max(1, (os.cpu_count() or 1) // opts.jobs)
    return [(None, threads)] * opts.jobs


class _Board:
    """What a person watches: a live table on a terminal, one line per state change elsewhere."""

    def __init__(self, study_dir: Path, console: Console):
        self.study_dir, self.console = study_dir, console
        self.live = Live(console=console, refresh_per_second=4, transient=False) if console.is_terminal else None

    def __enter__(self) -> "_Board":
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.live.__exit__(*exc)

    def event(self, key: str, what: str) -> None:
        S.log(self.study_dir, f"{key} {what}")
        line = f"{time.strftime('%H:%M:%S')} {key} {what}"
        if self.live:
            self.live.console.print(line, highlight=False, soft_wrap=True)
        else:
            self.console.print(line, highlight=False, soft_wrap=True)

    def draw(self, running: dict[str, _Job], data: dict) -> None:
        if not self.live:
            return
        table = Table(title=f"study {self.study_dir.name}", title_justify="left")
        for col in ("run", "step", "epochs", "val UAR", "time"):
            table.add_column(col, overflow="fold", justify="left" if col in ("run", "step") else "right")
        for job in running.values():
            rec = data["runs"][job.key]
            p = J.progress(Path(rec["run_dir"]), rec["fold"])
            table.add_row(job.key, job.commands[job.phase][0], str(p["epochs"]),
                          "-" if p["val_uar"] is None else f"{100 * p['val_uar']:.1f}",
                          f"{time.time() - job.started:.0f} s")
        states = [r["state"] for r in data["runs"].values()]
        counts = ", ".join(f"{states.count(s)} {s}" for s in S.STATES if states.count(s))
        self.live.update(Group(table, f"{counts} (of {len(states)} in the study)"))


def run_local(study_dir: Path, keys: list[str], opts: LocalOptions, console: Console) -> int:
    """Run ``keys`` (fold-runs of the study, in order) to the end; returns 0 when all are done,
    1 when some failed or could not start, 130 when interrupted."""
    job_slots = slots(opts)
    data = S.read(study_dir)
    for key in keys:  # a launcher that died (we hold the lock now) left them "running"
        if data["runs"][key]["state"] == "running":
            S.update(study_dir, key, state="interrupted")
    data = S.read(study_dir)
    queue = [k for k in keys if data["runs"][k]["state"] != "done"]
    tries = {k: 1 + opts.retry for k in queue}
    running: dict[str, _Job] = {}
    stop: list[int] = []  # Ctrl-C / SIGTERM only set this: the loop never stops halfway through an update
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    board = _Board(study_dir, console)
    try:
        with board:
            while (queue or running) and not stop:
                data = S.read(study_dir)
                free = [i for i in range(len(job_slots)) if i not in {j.slot for j in running.values()}]
                for key in list(queue):
                    if not free:
                        break
                    dep = data["runs"][key].get("after")
                    dep_state = data["runs"][dep]["state"] if dep else "done"
                    if dep_state != "done":
                        if dep not in queue and dep not in running:  # it failed for good, or is not asked for
                            queue.remove(key)
                            board.event(key, f"not started: it starts from {dep}, which is {dep_state}")
                        continue
                    queue.remove(key)
                    running[key] = _start(study_dir, key, data, free.pop(0), job_slots, board)
                for key, job in list(running.items()):
                    rc = job.proc.poll()
                    if rc is None:
                        continue
                    state = J.outcome(rc)
                    if state == "done" and job.phase + 1 < len(job.commands):
                        job.phase += 1
                        job.proc = J.start(job.commands[job.phase], J.log_path(study_dir, key),
                                           J.job_env(*job_slots[job.slot]))
                        board.event(key, f"trained; {job.commands[job.phase][0]} started")
                        continue
                    del running[key]
                    error = None
                    if state == "failed":
                        error = (f"{job.commands[job.phase][0]} {J.exit_text(rc)}: "
                                 f"{J.error_line(J.log_path(study_dir, key))}")
                    S.update(study_dir, key, state=state, error=error)
                    board.event(key, state + (f": {error}" if error else ""))
                    tries[key] -= 1
                    if state == "failed" and tries[key] > 0:
                        queue.insert(0, key)
                        board.event(key, f"retrying ({tries[key]} more tr{'y' if tries[key] == 1 else 'ies'} left)")
                board.draw(running, data)
                time.sleep(POLL_S)
            if stop:
                _stop(study_dir, running, board)
                return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    final = S.read(study_dir)["runs"]
    return 0 if all(final[k]["state"] == "done" for k in keys) else 1


def _start(study_dir: Path, key: str, data: dict, slot: int, job_slots, board: _Board) -> _Job:
    rec = data["runs"][key]
    fr = J.fold_run(rec, key)
    gpus = len(job_slots[slot][0] or [])
    job = _Job(key, J.commands(fr, gpus), slot)
    S.update(study_dir, key, state="running", attempts=rec.get("attempts", 0) + 1, slurm_submission=None, slurm_job=None)
    job.proc = J.start(job.commands[0], J.log_path(study_dir, key), J.job_env(*job_slots[slot]))
    what = "resumed" if "--resume" in job.commands[0] else "started"
    board.event(key, f"{what} ({job.commands[0][0]}" + (f", GPUs {job_slots[slot][0]}" if gpus else "") + ")")
    return job


def _stop(study_dir: Path, running: dict[str, _Job], board: _Board) -> None:
    """Ctrl-C: one SIGINT to each job, wait for all (they write their checkpoint), mark them. A
    second Ctrl-C only sets the stop flag again: the wait goes on."""
    for job in running.values():
        if job.proc.poll() is None:
            try:
                os.killpg(job.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    for key, job in running.items():
        rc = J.interrupt(job.proc)
        state = "done" if rc == 0 and job.phase + 1 == len(job.commands) else "interrupted"
        S.update(study_dir, key, state=state)
        board.event(key, state)
