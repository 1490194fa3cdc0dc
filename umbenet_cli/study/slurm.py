"""The Slurm launcher: the study's fold-runs as submitit job arrays, one task per fold-run.

Dependencies (a carry arm starts from ``two_stage``'s stage 1 of its fold): two arrays, the
second submitted with ``dependency=afterany:<first array>``; each of its tasks checks, when it
starts, that the run it starts from is done (else it fails, naming it). Why not tasks that wait
inside the first array: a waiting task holds a GPU doing nothing, and with
``--slurm-array-parallelism`` below the array size, waiters can take every slot while the run
they wait for is still queued. Why ``afterany`` rather than ``afterok``: ``afterok`` on an array
needs every task to succeed, so one failed fold would leave the whole second array pending
forever; ``afterany`` lets the rest go on and each task decides for its own fold.

Pre-emption and time-outs: submitit calls ``StudyTask.checkpoint``, which stops the running
`umbenet` command with one SIGINT (it keeps its last checkpoint), marks the run interrupted and
requeues the same task, which resumes it (``umbenet train --resume``).

One launcher per fold-run: a submission records in each fold-run's record the token it hands its
task (``slurm_submission``) and the task's job id (``slurm_job``). While ``squeue`` still lists that
job, a local launcher on the study is refused and a second submission leaves the run to it (each
run's ``train.lock`` would refuse the second writer anyway, but the study's record would then say
"failed" for a run that is training). A task whose token is no longer the record's (the run was
taken over with ``--take-over``) does nothing.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from umbenet_cli.study import jobs as J
from umbenet_cli.study import state as S
from umbenet_cli.study.matrix import shown
from umbenet_cli.study.state import StudyError


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    time: str = "24:00:00"
    gpus_per_job: int = 1
    array_parallelism: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


def minutes(text: str) -> int:
    """Slurm's time formats (MM, HH:MM:SS, D-HH:MM, D-HH:MM:SS) -> whole minutes."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise StudyError(f"--slurm-time {text!r}: give minutes (240) or Slurm's HH:MM:SS / D-HH:MM:SS")
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if b is None and days is None:
        total = a  # plain minutes
    elif c is None and days is None:
        total = a + b / 60  # MM:SS
    else:
        total = (days or 0) * 1440 + a * 60 + (b or 0) + (c or 0) / 60
    if total < 1:
        raise StudyError(f"--slurm-time {text!r}: at least one minute")
    return int(round(total))


def arrays(data: dict, keys: list[str]) -> list[list[str]]:
    """The fold-runs still to do, as arrays: those that start from another run's stage 1 come in
    a second array (submitted after the first)."""
    todo = [k for k in keys if data["runs"][k]["state"] != "done"]
    first = [k for k in todo if not data["runs"][k].get("after")]
    second = [k for k in todo if data["runs"][k].get("after")]
    return [a for a in (first, second) if a]


def parameters(opts: SlurmOptions, name: str) -> dict:
    """submitit AutoExecutor parameters (the slurm_ ones apply on Slurm only)."""
    params: dict = {"name": f"umbenet-{name}", "timeout_min": minutes(opts.time), "gpus_per_node": opts.gpus_per_job,
                    "tasks_per_node": 1, "nodes": 1}
    if opts.partition:
        params["slurm_partition"] = opts.partition
    if opts.array_parallelism:
        params["slurm_array_parallelism"] = opts.array_parallelism
    if opts.extra:
        params["slurm_additional_parameters"] = dict(opts.extra)
    return params


# Fold-run states in which a submitted task may still start or run (requeued after pre-emption: interrupted).
HELD_STATES = ("pending", "running", "interrupted")


def held(data: dict, keys: list[str]) -> dict[str, str]:
    """The fold-runs of ``keys`` a Slurm submission holds: key -> the job id of its task."""
    return {k: r.get("slurm_job") or "?" for k in keys
            if (r := data["runs"][k]).get("slurm_submission") and r["state"] in HELD_STATES}


def live_jobs(ids: list[str]) -> set[str] | None:
    """Which of these job ids (``1234_5`` for an array task) ``squeue`` still lists, pending,
    running or requeued; None when that cannot be told here (no ``squeue``, or it failed)."""
    squeue = shutil.which("squeue")
    if squeue is None:
        return None
    listed: set[str] = set()
    for array in sorted({i.split("_")[0] for i in ids}):
        try:
            out = subprocess.run([squeue, "--noheader", "--array", "--format=%i", "--jobs", array],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode == 0:
            listed |= set(out.stdout.split())
        elif "invalid job id" not in out.stderr.lower():  # a job that left the queue is "invalid"
            return None
    return {i for i in ids if i in listed}


def release(study_dir: Path, keys: list[str], take_over: bool) -> dict[str, str]:
    """Give back to the study the fold-runs of ``keys`` whose Slurm tasks are gone (or all of
    them with ``take_over``). Returns those still held by queued or running jobs: key -> job id;
    raises when ``squeue`` cannot tell and ``take_over`` was not given."""
    data = S.read(study_dir)
    holding = held(data, keys)
    if not holding:
        return {}
    alive = set() if take_over else live_jobs(sorted(set(holding.values())))
    if alive is None:
        raise StudyError(f"{len(holding)} fold-run(s) of {study_dir} were submitted to Slurm "
                         f"({_jobs_text(holding)}), and `squeue` cannot be run here to see whether they still "
                         f"run. Run this on the cluster's login node; or, once those jobs are gone for good "
                         f"(scancel), pass --take-over.")
    gone = {k: j for k, j in holding.items() if j not in alive}  # a gone task changes nothing any more
    S.update_many(study_dir, {k: {"slurm_submission": None, "slurm_job": None,
                                  **({"state": "interrupted"} if data["runs"][k]["state"] == "running" else {})}
                              for k in gone})
    for key, job in gone.items():
        S.log(study_dir, f"{key}: Slurm job {job} " + ("taken over (--take-over)" if take_over else "is gone")
              + "; the run is the study's again")
    return {k: j for k, j in holding.items() if j in alive}


def _jobs_text(holding: dict[str, str]) -> str:
    jobs = sorted(set(holding.values()))
    return "job" + ("s " if len(jobs) > 1 else " ") + ", ".join(jobs[:6]) + (", ..." if len(jobs) > 6 else "")


def _runs_text(holding: dict[str, str]) -> str:
    return ", ".join(list(holding)[:4]) + (", ..." if len(holding) > 4 else "")


def refuse_if_held(study_dir: Path, keys: list[str], take_over: bool) -> None:
    """A local launcher does not start on fold-runs that Slurm jobs still hold."""
    still = release(study_dir, keys, take_over)
    if still:
        raise StudyError(f"{len(still)} fold-run(s) of {study_dir} are with Slurm {_jobs_text(still)}, still queued or "
                         f"running ({_runs_text(still)}): wait for "
                         f"them (`umbenet study status {study_dir}`), or cancel them (scancel) and run this again.")


class StudyTask:
    """What one array task runs: one fold-run of the study, resumed when requeued."""

    def __init__(self, study_dir: Path, gpus: int, submission: str | None = None):
        self.study_dir, self.gpus, self.submission = Path(study_dir), gpus, submission
        self._proc = None

    def __call__(self, key: str) -> str:
        data = S.read(self.study_dir)
        rec = data["runs"][key]
        if rec["state"] == "done":
            return "done"
        mine = getattr(self, "submission", None)  # None: a task pickled before submissions were recorded
        if mine is not None and rec.get("slurm_submission") != mine:
            S.log(self.study_dir, f"{key}: a task of an earlier submission started after the run was taken over; "
                                  f"it does nothing")
            return "taken over"
        dep = rec.get("after")
        if dep and data["runs"][dep]["state"] != "done":
            error = f"it starts from {dep}'s stage 1, which is {data['runs'][dep]['state']}: finish that run first"
            S.update(self.study_dir, key, state="failed", error=error)
            S.log(self.study_dir, f"{key} failed: {error}")
            return "failed"
        threads = int(os.environ.get("SLURM_CPUS_PER_TASK", "0")) or None
        return J.run_job(self.study_dir, key, self.gpus, J.job_env(None, threads), on_start=self._started)

    def _started(self, proc) -> None:
        self._proc = proc

    def checkpoint(self, key: str):
        """Pre-empted or out of time: stop the command cleanly and requeue this task."""
        import submitit

        if self._proc is not None:
            J.interrupt(self._proc, grace_s=60)
        S.update(self.study_dir, key, state="interrupted")
        S.log(self.study_dir, f"{key} interrupted (Slurm pre-emption or time limit): requeued")
        return submitit.helpers.DelayedSubmission(StudyTask(self.study_dir, self.gpus, self.submission), key)

    def __getstate__(self) -> dict:  # the running child never travels with the pickled task
        return {"study_dir": self.study_dir, "gpus": self.gpus, "submission": self.submission, "_proc": None}


def describe(study_dir: Path, data: dict, keys: list[str], opts: SlurmOptions, console: Console) -> None:
    """--dry-run: the submission, array by array, and the commands each task runs."""
    groups = arrays(data, keys)
    params = parameters(opts, Path(study_dir).name)
    console.print(f"[bold]Slurm submission[/] (dry run: nothing submitted) for {study_dir}", highlight=False)
    console.print(f"  resources per task: {opts.gpus_per_job} GPU(s), 1 node, time limit {params['timeout_min']} min"
                  + (f", partition {opts.partition}" if opts.partition else "")
                  + (f", at most {opts.array_parallelism} tasks at once" if opts.array_parallelism else "")
                  + "".join(f", --{k}={v}" for k, v in opts.extra.items()), highlight=False, soft_wrap=True)
    if not groups:
        console.print("  nothing to submit: every run is done", highlight=False)
    for i, group in enumerate(groups, 1):
        dep = "" if i == 1 else " (dependency=afterany:<array 1>; each task first checks its stage-1 run is done)"
        console.print(f"  array {i}: {len(group)} task(s){dep}", highlight=False)
        for index, key in enumerate(group):
            fr = J.fold_run(data["runs"][key], key)
            console.print(f"    [{index}] {key}:", highlight=False)
            for command in J.commands(fr, opts.gpus_per_job):
                console.print(f"        {shown(command)}", highlight=False, soft_wrap=True)


def make_executor(study_dir: Path, opts: SlurmOptions, cluster: str | None = "slurm", after: str | None = None):
    """The submitit executor of the study's arrays (``after``: the job id the array waits for)."""
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=str(Path(study_dir) / "slurm" / "%j"), cluster=cluster)
    except RuntimeError as exc:  # submitit: 'Could not detect "srun"'
        raise StudyError(f"--launcher slurm: no Slurm on this machine ({exc}); submit from the cluster's login node, "
                         f"or use --launcher local") from None
    params = parameters(opts, Path(study_dir).name)
    if cluster == "local":  # submitit's local executor knows no Slurm options
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    elif after is not None:
        params["slurm_additional_parameters"] = {**opts.extra, "dependency": f"afterany:{after}"}
    executor.update_parameters(**params)
    return executor


def submit(study_dir: Path, keys: list[str], opts: SlurmOptions, console: Console,
           cluster: str | None = "slurm", take_over: bool = False) -> list:
    """Submit the arrays; returns the submitit jobs. ``cluster="local"`` runs them on this machine
    through submitit's local executor (tests): it has no dependencies, so the second array is
    submitted once the first has finished. Fold-runs that an earlier submission's queued or
    running tasks hold are left to them (``take_over``: submitted again all the same)."""
    try:
        import submitit
    except ImportError:
        raise StudyError("--launcher slurm needs submitit: pip install 'umbenet[slurm]'") from None
    still = release(study_dir, keys, take_over)
    if still:
        console.print(f"{len(still)} fold-run(s) left to Slurm {_jobs_text(still)}, still queued or running: "
                      f"{_runs_text(still)}", highlight=False)
    groups = arrays(S.read(study_dir), [k for k in keys if k not in still])
    if not groups:
        console.print("nothing to submit: every run of the study is done"
                      + (" or with Slurm already" if still else ""), highlight=False)
        return []
    executor = make_executor(study_dir, opts, cluster)
    submission = uuid.uuid4().hex[:12]  # what a task checks: is the run still this submission's?
    task = StudyTask(study_dir, opts.gpus_per_job if cluster != "local" else 0, submission)
    submitted: list = []
    for i, group in enumerate(groups):
        if i and submitted:
            if cluster == "local":
                for job in submitted:
                    job.wait()
            else:
                executor = make_executor(study_dir, opts, cluster, after=submitted[0].job_id.split("_")[0])
        # Recorded before the tasks exist: one may start at once.
        S.update_many(study_dir, {k: {"slurm_submission": submission, "slurm_job": None} for k in group})
        try:
            jobs = executor.map_array(task, group)
        except Exception:
            S.update_many(study_dir, {k: {"slurm_submission": None} for k in group})
            raise
        S.update_many(study_dir, {k: {"slurm_job": job.job_id} for k, job in zip(group, jobs)})
        for key, job in zip(group, jobs):
            S.log(study_dir, f"{key} submitted (array {i + 1}, job {job.job_id})")
        console.print(f"array {i + 1}: {len(group)} task(s) submitted as job {jobs[0].job_id.split('_')[0]}",
                      highlight=False)
        submitted += jobs
    console.print(f"follow it with `umbenet study status {study_dir}`; the logs are in {study_dir / 'logs'} "
                  f"and {study_dir / 'slurm'}", highlight=False)
    return submitted
