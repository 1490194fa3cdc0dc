"""A plan x folds x class settings -> the fold-runs of a study, each with its `umbenet` commands.

Layout: ``runs/STUDY/fold1/two_stage`` is an ordinary run folder (``umbenet train --runs-dir
runs/STUDY/fold1 --name two_stage --fold 1``); the 10-class setting (``--exclude-classes
neutral``) is ``two_stage-10cl`` beside it. One run folder per fold, so folds train in parallel
without two processes ever writing one run folder, and ``umbenet eval/report/export`` work on each.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from umbenet_cli.model.config import UMBEnetConfig
from umbenet_cli.study.plans import MODALITIES, Plan, PlanError, RunSpec

CLASS_SETTINGS = {"11": (11,), "10": (10,), "both": (11, 10)}
TEN_TAG = "-10cl"


@dataclass(frozen=True)
class FoldRun:
    """One run folder of a study: a plan run on one fold in one class setting."""

    key: str  # "fold1/two_stage-10cl": unique in the study, and the run folder under it
    run: str  # the plan's run name
    fold: int | None
    classes: int  # 11 (all the cache's classes) or 10 (neutral left out)
    run_dir: Path
    train: tuple[str, ...]  # `umbenet` arguments that start it
    after: str | None  # key of the fold-run whose stage 1 it starts from

    def to_dict(self) -> dict:
        return {"run": self.run, "fold": self.fold, "classes": self.classes, "run_dir": str(self.run_dir),
                "train": list(self.train), "after": self.after}


def fold_dir_name(fold: int | None) -> str:
    return f"fold{fold}" if fold is not None else "train-test"


def parse_folds(text: str, cache_folds: list[int]) -> tuple[int | None, ...]:
    """``--fold``: all, N, or a comma list, against the folds the cache defines."""
    if not cache_folds:
        if text not in ("all", ""):
            raise PlanError(f"--fold {text}: this cache has a train/test split and no folds; leave --fold out")
        return (None,)
    if text in ("all", ""):
        return tuple(cache_folds)
    out = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        if not item.isdigit() or int(item) not in cache_folds:
            raise PlanError(f"--fold {text}: {item!r} is not a fold of this cache; give 'all', a fold or a comma "
                            f"list of {cache_folds}")
        out.append(int(item))
    if not out:
        raise PlanError(f"--fold {text!r}: give 'all', a fold or a comma list of {cache_folds}")
    return tuple(dict.fromkeys(out))


def parse_classes(text: str) -> tuple[int, ...]:
    if text not in CLASS_SETTINGS:
        raise PlanError(f"--classes {text}: choose 11 (all classes), 10 (neutral left out: --exclude-classes "
                        f"neutral) or both")
    return CLASS_SETTINGS[text]


def run_sets(spec: RunSpec, preset: str, sets: dict[str, str]) -> dict[str, str]:
    """The run's --set values: the study's, then the run's own, then its epoch budget."""
    merged = {**sets, **spec.sets}
    if spec.epoch_factor != 1:
        epochs = UMBEnetConfig.preset(spec.preset or preset, **merged).optim.max_epochs
        merged["optim.max_epochs"] = str(epochs * spec.epoch_factor)
    return merged


def train_args(spec: RunSpec, fold: int | None, classes: int, runs_dir: Path, cache: Path, preset: str,
               sets: dict[str, str], init_from: Path | None) -> tuple[str, ...]:
    """`umbenet train` arguments, options at their default left out."""
    name = spec.name + (TEN_TAG if classes == 10 else "")
    args = ["train", "--cache", str(cache), "--runs-dir", str(runs_dir), "--name", name,
            "--preset", spec.preset or preset]
    for k, v in run_sets(spec, preset, sets).items():
        args += ["--set", f"{k}={v}"]
    if spec.stage != "both":
        args += ["--stage", spec.stage]
    if fold is not None:
        args += ["--fold", str(fold)]
    if tuple(spec.modalities) != MODALITIES:
        args += ["--modalities", ",".join(spec.modalities)]
    excluded = list(dict.fromkeys([*spec.exclude_classes, *(["neutral"] if classes == 10 else [])]))
    if excluded:
        args += ["--exclude-classes", ",".join(excluded)]
    if spec.all_modalities:
        args += ["--all-modalities"]
    if init_from is not None:
        args += ["--init-from", str(init_from)]
    for opt, value in (("--val-fraction", spec.val_fraction), ("--seed", spec.seed), ("--save-every", spec.save_every),
                       ("--max-steps", spec.max_steps), ("--logger", spec.logger)):
        if value is not None:
            args += [opt, str(value)]
    return tuple(args)


def expand(plan: Plan, study_dir: Path, cache: Path, preset: str, sets: dict[str, str],
           folds: tuple[int | None, ...], classes: tuple[int, ...]) -> list[FoldRun]:
    """Every fold-run, fold by fold, in plan order (a run after the one it starts from)."""
    out = []
    for fold in folds:
        runs_dir = study_dir / fold_dir_name(fold)
        for c in classes:
            tag = TEN_TAG if c == 10 else ""
            for spec in plan.runs:
                after = f"{fold_dir_name(fold)}/{spec.init_from}{tag}" if spec.init_from else None
                init = runs_dir / f"{spec.init_from}{tag}" if spec.init_from else None
                out.append(FoldRun(f"{fold_dir_name(fold)}/{spec.name}{tag}", spec.name, fold, c,
                                   runs_dir / f"{spec.name}{tag}",
                                   train_args(spec, fold, c, runs_dir, cache, preset, sets, init), after))
    return sorted(out, key=lambda fr: fr.after is not None)  # stable: every dependency first


def resume_args(fr: FoldRun) -> tuple[str, ...]:
    """`umbenet train` arguments that continue a started run from its last checkpoint."""
    return ("train", "--runs-dir", str(fr.run_dir.parent), "--name", fr.run_dir.name, "--resume")


def eval_args(fr: FoldRun) -> tuple[str, ...]:
    """`umbenet eval`: every modality subset of the held-out fold, as a user would run it."""
    return ("eval", str(fr.run_dir))


def device_args(command: tuple[str, ...], gpus: int) -> tuple[str, ...]:
    """Add the job's devices: its GPUs are 0..gpus-1 of what CUDA_VISIBLE_DEVICES shows it."""
    if gpus <= 0:
        return command
    if command[0] == "train":
        return (*command, "--gpus", ",".join(str(i) for i in range(gpus)))
    return (*command, "--device", "cuda")


def shown(command: tuple[str, ...]) -> str:
    return "umbenet " + shlex.join(command)
