"""``umbenet study run PLAN``: plan -> fold-runs -> study.json -> a launcher (or a dry-run listing).

Every check runs before anything is created: the plan, the cache (its folds and classes), the
options, and the recorded study when there is one (a changed plan needs ``--extend``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from umbenet_cli.study import jobs as J
from umbenet_cli.study import state as S
from umbenet_cli.study.local import LocalOptions, run_local, slots
from umbenet_cli.study.matrix import expand, fold_dir_name, parse_classes, parse_folds, shown
from umbenet_cli.study.plans import PlanError, load_plan
from umbenet_cli.study.slurm import SlurmOptions, describe, minutes, refuse_if_held, submit
from umbenet_cli.study.state import StudyError

LAUNCHERS = ("local", "slurm")


@dataclass(frozen=True)
class StudyRequest:
    plan: str
    cache: str | None = None
    name: str | None = None
    runs_dir: str = "runs"
    fold: str = "all"
    classes: str = "11"
    preset: str = "default"
    sets: dict[str, str] = field(default_factory=dict)
    launcher: str = "local"
    dry_run: bool = False
    extend: bool = False
    take_over: bool = False
    local: LocalOptions = LocalOptions()
    slurm: SlurmOptions = SlurmOptions()


def cache_facts(cache: Path) -> tuple[list[int], tuple[str, ...]]:
    """(folds, classes) of a feature cache, read from its Parquet parts (the fold column only)."""
    import numpy as np
    import pyarrow.parquet as pq

    from umbenet_cli.data.cache_parts import features_dir, list_parts, table_spec

    spec = table_spec(features_dir(cache))
    if spec is None:
        raise StudyError(f"--cache {cache}: no feature cache there; run `umbenet prep` first, or pass the folder "
                         f"`umbenet prep --out` wrote")
    folds: set[int] = set()
    for part in list_parts(features_dir(cache)):
        col = pq.read_table(part.path, columns=["fold"]).column(0).to_numpy(zero_copy_only=False)
        col = col[~np.isnan(col.astype(float))] if col.dtype.kind == "f" else col
        folds.update(int(f) for f in np.unique(col) if f is not None and int(f) >= 0)
    return sorted(folds), tuple(spec.classes)


def _absolute(path: str | Path) -> Path:
    from umbenet_cli.training.options import absolute

    return absolute(path)


def prepare(req: StudyRequest) -> tuple[Path, dict, list[str]]:
    """All checks; returns (study folder, study data, the requested fold-run keys in order).
    Creates study.json unless --dry-run."""
    if req.launcher not in LAUNCHERS:
        raise StudyError(f"--launcher {req.launcher!r}: choose local or slurm")
    if req.launcher == "slurm" and (req.local.jobs != 1 or req.local.gpus or req.local.gpus_per_job != 1):
        raise StudyError("--jobs, --gpus and --gpus-per-job are for --launcher local; on Slurm each task gets "
                         "--slurm-gpus-per-job GPUs and --slurm-array-parallelism tasks run at once")
    plan = load_plan(req.plan, req.preset, req.sets)
    study_dir = _absolute(Path(req.runs_dir) / (req.name or plan.name))
    recorded = S.read(study_dir) if S.study_file(study_dir).is_file() else None
    cache = req.cache or (recorded or {}).get("settings", {}).get("cache")
    if cache is None:
        raise StudyError("which cache? pass --cache DIR (the folder `umbenet prep` wrote)")
    cache = _absolute(cache)
    cache_folds, classes = cache_facts(cache)
    folds = parse_folds(req.fold, cache_folds)
    settings = parse_classes(req.classes)
    if 10 in settings and "neutral" not in {c.lower() for c in classes}:
        raise PlanError(f"--classes {req.classes}: the 10-class setting leaves neutral out, and this cache's classes "
                        f"{list(classes)} have no neutral; use --classes 11")
    if req.launcher == "local":
        slots(req.local)  # --gpus / --jobs checked now, not after the study folder exists
    else:
        minutes(req.slurm.time)
    fold_runs = expand(plan, study_dir, cache, req.preset, req.sets, folds, settings)
    plan_record = {"name": plan.name, "source": plan.source, "runs": [r.to_dict() for r in plan.runs]}
    data = S.reconcile(study_dir, plan_record, {"cache": str(cache), "preset": req.preset, "set": req.sets,
                                                 "folds": list(folds), "classes": list(settings)},
                       fold_runs, req.extend, create=not req.dry_run)
    return study_dir, data, [fr.key for fr in fold_runs]


def dry_run(study_dir: Path, data: dict, keys: list[str], req: StudyRequest, console: Console) -> None:
    """Every planned fold-run with its commands and state; nothing is created."""
    exists = S.study_file(study_dir).is_file()
    n_runs = len({data["runs"][k]["run"] for k in keys})
    folds = list(dict.fromkeys(data["runs"][k]["fold"] for k in keys))
    done = [k for k in keys if data["runs"][k]["state"] == "done"]
    console.print(f"[bold]study {study_dir.name}[/] (dry run: nothing is trained, submitted or created): plan "
                  f"{data['plan']['name']}, {n_runs} run(s) x {len(folds)} fold(s) x "
                  f"{len(parse_classes(req.classes))} class setting(s) = {len(keys)} fold-run(s), "
                  f"{len(done)} done, in {study_dir}" + ("" if exists else " (not created yet)"),
                  highlight=False, soft_wrap=True)
    if req.launcher == "slurm":
        describe(study_dir, data, keys, req.slurm, console)
        return
    gpus = len(slots(req.local)[0][0] or [])
    for fold in folds:
        console.print(f"[bold]{fold_dir_name(fold)}[/]", highlight=False)
        for key in (k for k in keys if data["runs"][k]["fold"] == fold):
            rec = data["runs"][key]
            fr = J.fold_run(rec, key)
            after = f", after {rec['after']}" if rec.get("after") else ""
            console.print(f"  {key.split('/', 1)[1]}: {rec['state']}{after}", highlight=False)
            if rec["state"] != "done":
                for command in J.commands(fr, gpus):
                    console.print(f"    {shown(command)}", highlight=False, soft_wrap=True)


def run_study(req: StudyRequest, console: Console, err: Console) -> int:
    """Returns the exit code: 0 all done, 1 some failed, 130 interrupted."""
    study_dir, data, keys = prepare(req)
    if req.dry_run:
        dry_run(study_dir, data, keys, req, console)
        return 0
    todo = [k for k in keys if data["runs"][k]["state"] != "done"]
    if not todo:
        console.print(f"nothing to do: all {len(keys)} fold-runs of study {study_dir.name} are done ({study_dir}); "
                      f"see `umbenet study status {study_dir}`, `umbenet report {study_dir}`", highlight=False)
        return 0
    S.log(study_dir, f"study run: {len(todo)} of {len(keys)} fold-runs to do ({req.launcher} launcher)")
    if req.launcher == "slurm":
        with S.launcher_lock(study_dir):  # not while a local launcher works on the study
            submit(study_dir, keys, req.slurm, console, take_over=req.take_over)
        return 0
    with S.launcher_lock(study_dir):
        refuse_if_held(study_dir, keys, req.take_over)  # nor on runs that Slurm jobs still hold
        data = S.read(study_dir)
        states = [data["runs"][k]["state"] for k in todo]
        console.print(f"study {study_dir.name}: {len(keys) - len(todo)} of {len(keys)} fold-runs done; running "
                      f"{len(todo)} ({states.count('interrupted')} to resume, {states.count('failed')} to retry), "
                      f"{len(slots(req.local))} at a time; log: {study_dir / 'study.log'}", highlight=False)
        rc = run_local(study_dir, keys, req.local, console)
    from umbenet_cli.study.status import print_status

    print_status(study_dir, console)
    if rc and rc != 130:  # 130: the CLI says how to resume (the same command)
        err.print(f"[red]some fold-runs did not finish[/]: their errors are above and in {study_dir / 'logs'}; run the "
                  f"same command again to retry them (--retry N retries within one go)", highlight=False)
    return rc
