"""One fold-run as a job: the real `umbenet train` (or `train --resume`) and `umbenet eval` command
lines, run as child processes of this Python, their output in ``runs/STUDY/logs/<key>.log``.

Both launchers use this: ``local`` starts the commands itself and watches several jobs at once;
``slurm`` runs ``run_job`` inside each array task. A child runs in its own session, so a Ctrl-C
at the terminal reaches the launcher only, which then stops each child with exactly one SIGINT
(training keeps its last checkpoint).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from umbenet_cli.reporting.collect import read_metrics
from umbenet_cli.study import state as S
from umbenet_cli.study.matrix import FoldRun, device_args, eval_args, resume_args, shown

PYTHON = (sys.executable, "-m", "umbenet_cli")
# In each command's environment: the pid of the process that started it. The command ends as soon
# as that process dies (cli.main -> training.distributed.die_with_launcher), so a `kill -9` of the
# launcher leaves no training behind that goes on writing into the study's run folders.
JOB_OF_ENV = "UMBENET_JOB_OF"
# Ctrl-C as the commands exit on it. A command killed by another signal (the OOM killer's SIGKILL)
# failed: the launchers mark what they stop themselves as interrupted.
INTERRUPTED_CODES = {130, -signal.SIGINT}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def fold_run(rec: dict, key: str) -> FoldRun:
    """A study.json record back as a FoldRun."""
    return FoldRun(key, rec["run"], rec["fold"], rec["classes"], Path(rec["run_dir"]), tuple(rec["train"]),
                   rec.get("after"))


def commands(fr: FoldRun, gpus: int = 0) -> list[tuple[str, ...]]:
    """What the job runs now: train (resume when the run folder holds a run), then eval."""
    first = resume_args(fr) if (fr.run_dir / "run.json").is_file() else fr.train
    return [device_args(first, gpus), device_args(eval_args(fr), gpus)]


def log_path(study_dir: Path, key: str) -> Path:
    return Path(study_dir) / "logs" / f"{key}.log"


def job_env(visible_gpus: list[int] | None = None, threads: int | None = None) -> dict[str, str]:
    """The environment of a job's commands: its GPUs, its share of the CPU threads."""
    env = dict(os.environ, **{JOB_OF_ENV: str(os.getpid())})
    if visible_gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in visible_gpus)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    return env


def start(command: tuple[str, ...], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start one `umbenet` command, its output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        fh.write(f"\n$ {shown(command)}\n")
        fh.flush()
        return subprocess.Popen([*PYTHON, *command], stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)


def interrupt(proc: subprocess.Popen, grace_s: float = 120.0) -> int:
    """Stop a command as Ctrl-C would (one SIGINT to its process group), then wait for it; SIGKILL
    if it has not stopped after ``grace_s``. Returns its exit code."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def error_line(log: Path) -> str:
    """Why a command failed, on one line: its last ``error`` message (with the indented lines
    that follow it: the reasons), else its last line."""
    try:
        raw = [_ANSI.sub("", x).rstrip() for x in log.read_text(errors="replace").splitlines()]
    except OSError:
        return "(no log)"
    raw = [x for x in raw if x.strip() and not x.startswith("$ ")]
    starts = [i for i, x in enumerate(raw) if x.lower().startswith(("error", "stopped")) or "Error:" in x]
    if not starts:
        return raw[-1].strip()[:300] if raw else "(no output)"
    i = starts[-1]
    parts = [raw[i].strip()]
    for x in raw[i + 1:]:
        if not x.startswith((" ", "\t")):
            break
        parts.append(x.strip())
    return " ".join(parts)[:400]


def exit_text(rc: int) -> str:
    """``exit 2``, or ``killed by SIGKILL`` for a command a signal ended."""
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit {rc}"


def outcome(rc: int) -> str:
    """A command's exit code -> the job's state: done (0), interrupted, failed."""
    if rc == 0:
        return "done"
    return "interrupted" if rc in INTERRUPTED_CODES else "failed"


def run_job(study_dir: Path, key: str, gpus: int = 0, env: dict[str, str] | None = None,
            on_start=None) -> str:
    """Run one fold-run to the end in this process (a Slurm task); returns its final state.
    ``on_start(proc)`` sees each child started (so a pre-emption handler can stop it)."""
    rec = S.read(study_dir)["runs"][key]
    fr = fold_run(rec, key)
    log = log_path(study_dir, key)
    S.update(study_dir, key, state="running", attempts=rec.get("attempts", 0) + 1)
    S.log(study_dir, f"{key} running")
    for command in commands(fr, gpus):
        proc = start(command, log, env or job_env())
        if on_start is not None:
            on_start(proc)
        rc = proc.wait()
        state = outcome(rc)
        if state != "done":
            error = None if state == "interrupted" else f"{command[0]} {exit_text(rc)}: {error_line(log)}"
            S.update(study_dir, key, state=state, error=error)
            S.log(study_dir, f"{key} {state}" + (f": {error}" if error else ""))
            return state
    S.update(study_dir, key, state="done")
    S.log(study_dir, f"{key} done")
    return "done"


# ------------------------------------------------------------------------ what a run folder says
def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def progress(run_dir: Path, fold: int | None) -> dict:
    """epochs trained (all stages), best validation UAR of the last stage trained, and the test
    UAR/WAR of the full subset once evaluated (fractions; None where not there yet)."""
    split = Path(run_dir) / (f"fold{fold}" if fold is not None else "train-test")
    epochs, best, test = 0, None, None
    for stage in ("stage1", "stage2", "onestage"):
        folder = split / stage
        if not folder.is_dir():
            continue
        result = _read_json(folder / "result.json")
        if result is not None:
            epochs += int(result.get("epochs", 0))
            best = result.get("best_val_uar", best)
        else:  # running: its epochs so far (a torn last line is left out)
            lines = read_metrics(folder)
            epochs += sum(not m.get("partial_epoch") for m in lines)
            vals = [v for v in ((m.get("val") or {}).get("uar") for m in lines) if v is not None]
            best = max(vals) if vals else best
        results = _read_json(folder / "eval" / "test" / "results.json")
        if results and results.get("subsets"):
            test = max(results["subsets"], key=lambda e: len(e["modalities"]))
    return {"epochs": epochs, "val_uar": best, "test_uar": test["uar"] if test else None,
            "test_war": test["war"] if test else None}
