"""``runs/STUDY/study.json``: the study's plan, its fold-runs and each one's state, plus ``study.log``.

States: pending, running, interrupted, done, failed (with its last error line). Every change is a
read-modify-write under an exclusive lock on ``.study.lock``, written to a temporary file and
``os.replace``d: Slurm tasks on several nodes update one file without losing each other's change.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from umbenet_cli.errors import UserError
from umbenet_cli.study.matrix import FoldRun

STATES = ("pending", "running", "interrupted", "done", "failed")
VERSION = 1


class StudyError(UserError, ValueError):
    """A study request that cannot go on; the message names the problem and the fix."""


def study_file(study_dir: Path) -> Path:
    return Path(study_dir) / "study.json"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def _locked(study_dir: Path) -> Iterator[None]:
    with open(Path(study_dir) / ".study.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read(study_dir: Path) -> dict:
    path = study_file(study_dir)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StudyError(f"{study_dir} is not a study (no study.json): start one with `umbenet study run PLAN "
                         f"--cache DIR`, or pass runs/<study>") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"cannot read {path} ({type(exc).__name__}: {exc}); it is written by `umbenet study run`: "
                         f"restore it, or start the study under another --name") from None


def _write(study_dir: Path, data: dict) -> None:
    path = study_file(study_dir)
    tmp = path.with_name(f".study.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def new_record(fr: FoldRun) -> dict:
    return {**fr.to_dict(), "state": "pending", "attempts": 0, "error": None, "elapsed": 0.0, "started": None,
            "finished": None, "where": None}


def reconcile(study_dir: Path, plan: dict, settings: dict, fold_runs: list[FoldRun], extend: bool,
              create: bool = True) -> dict:
    """The study.json this request works with: a new one, or the recorded one checked against the
    request. A recorded run whose command changed is refused; runs the record lacks need --extend
    (they are then added). Returns the (possibly new) study data; writes it when ``create``."""
    path = study_file(study_dir)
    if not path.is_file():
        data = {"version": VERSION, "name": Path(study_dir).name, "created": now(), "plan": plan,
                "settings": settings, "runs": {fr.key: new_record(fr) for fr in fold_runs}}
        if create:
            Path(study_dir).mkdir(parents=True, exist_ok=True)
            with _locked(study_dir):
                _write(study_dir, data)
        return data
    data = read(study_dir)
    changed, new = [], []
    for fr in fold_runs:
        rec = data["runs"].get(fr.key)
        if rec is None:
            new.append(fr)
        elif list(fr.train) != rec["train"] or fr.after != rec.get("after"):
            was, now_ = _options(rec["train"]), _options(fr.train)
            changed.append(f"{fr.key}: recorded {' '.join(o for o in was if o not in now_) or '-'}; "
                           f"now {' '.join(o for o in now_ if o not in was) or '-'}")
    if changed:
        raise StudyError(f"the study {study_dir} was planned with other options for {len(changed)} run(s):\n  - "
                         + "\n  - ".join(changed[:8]) + ("\n  - ..." if len(changed) > 8 else "")
                         + "\n  Run it as planned (the same PLAN, --preset, --set, --cache), or start another --name.")
    if new and not extend:
        raise StudyError(f"the study {study_dir} does not have {len(new)} of these runs "
                         f"({', '.join(fr.key for fr in new[:6])}{', ...' if len(new) > 6 else ''}): its plan "
                         f"changed. Add them with --extend (the recorded runs are kept), or start another --name.")
    if new and create:
        with _locked(study_dir):
            data = read(study_dir)
            for fr in new:
                data["runs"][fr.key] = new_record(fr)
            names = {r["name"] for r in data["plan"]["runs"]}
            data["plan"]["runs"] += [r for r in plan["runs"] if r["name"] not in names]
            _write(study_dir, data)
    elif new:
        data = {**data, "runs": {**data["runs"], **{fr.key: new_record(fr) for fr in new}}}
    return data


def _options(argv: list[str] | tuple[str, ...]) -> list[str]:
    """``["train", "--set", "a=1", "--all-modalities"]`` -> ``["--set a=1", "--all-modalities"]``."""
    out: list[str] = []
    for token in argv[1:]:
        if token.startswith("--") or not out:
            out.append(token)
        else:
            out[-1] += f" {token}"
    return out


def update(study_dir: Path, key: str, **changes) -> dict:
    """Set fields of one fold-run's record (state, error, ...); returns the new record. Entering
    ``running`` stamps ``started`` and where; leaving it adds the time spent to ``elapsed``."""
    return update_many(study_dir, {key: changes})[key]


def update_many(study_dir: Path, changes: dict[str, dict]) -> dict[str, dict]:
    """``update`` for several fold-runs (key -> fields), in one write; returns the new records."""
    with _locked(study_dir):
        data = read(study_dir)
        for key, fields_ in changes.items():
            rec, fields_ = data["runs"][key], dict(fields_)
            state = fields_.get("state")
            if state == "running" and rec["state"] != "running":
                fields_.setdefault("started", time.time())
                fields_.setdefault("where", f"{socket.gethostname()}:{os.getpid()}")
            if state is not None and state != "running" and rec["state"] == "running" and rec.get("started"):
                fields_.setdefault("elapsed", rec.get("elapsed", 0.0) + time.time() - rec["started"])
                fields_.setdefault("started", None)
            if state == "done":
                fields_.setdefault("finished", now())
                fields_.setdefault("error", None)
            rec.update(fields_)
        _write(study_dir, data)
        return {key: dict(data["runs"][key]) for key in changes}


def elapsed(rec: dict) -> float:
    """Seconds the fold-run has spent running, over all its attempts, up to now."""
    return rec.get("elapsed", 0.0) + (time.time() - rec["started"] if rec["state"] == "running" and rec.get("started") else 0.0)


def log(study_dir: Path, line: str) -> None:
    """One timestamped line in ``study.log``."""
    with open(Path(study_dir) / "study.log", "a") as fh:
        fh.write(f"{now()} {line}\n")


@contextlib.contextmanager
def launcher_lock(study_dir: Path) -> Iterator[None]:
    """Held by the one local launcher working on a study: a second one exits 2 instead of starting
    jobs on run folders the first is training."""
    path = Path(study_dir) / ".launcher.lock"
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            who = fh.read().strip() or "another process"
            raise StudyError(f"another `umbenet study run` is working on {study_dir} ({who}): wait for it, or stop it "
                             f"(Ctrl-C) and run the command again") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
        fh.flush()
        yield
    finally:
        fh.close()
