"""Find what ``umbenet predict`` works on: the videos, and the checkpoint of a training run.

A run folder is laid out by ``umbenet train``::

    runs/<name>/run.json
    runs/<name>/<fold1..5|train-test>/<stage1|stage2|onestage>/checkpoints/{best,last}/COMPLETE

``--run`` may name any of the three levels: a run folder (its final stage is used: stage2, else
onestage, else stage1), a stage folder, or a checkpoint folder. An exported model folder
(``umbenet export``) is a checkpoint folder; a Hugging Face Hub repo id (``owner/name``) that is
no local path is fetched (``model.hub``) and used as one.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from umbenet_cli.errors import UserError
from umbenet_cli.model.checkpoint import MARKER
from umbenet_cli.model.config import MODALITIES
from umbenet_cli.model.hub import resolve_model_folder

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
FINAL_STAGE_ORDER = ("stage2", "onestage", "stage1")  # the stage a run's predictions come from
CHECKPOINT_KINDS = ("best", "last")
_SPLIT_DIR = re.compile(r"^(fold\d+|train-test)$")


class PredictError(UserError, ValueError):
    """A prediction request that cannot run; names the input and the fix."""


# ------------------------------------------------------------------------------------ videos
def find_videos(path: str | Path) -> list[Path]:
    """The videos to predict: ``path`` itself if it is a file, else the video files directly in the
    folder (suffixes ``VIDEO_SUFFIXES``, any case), sorted by name."""
    p = Path(path).expanduser()
    if not p.exists():
        raise PredictError(f"no such file or folder: {p}. Give a video file or a folder of videos.")
    if p.is_file():
        return [p]
    videos = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise PredictError(f"no video files in {p} (looked for {' '.join(VIDEO_SUFFIXES)}, not in "
                           f"sub-folders). Give a folder holding videos, or one video file.")
    return videos


# -------------------------------------------------------------------------------- checkpoints
def _is_checkpoint(p: Path) -> bool:
    return (p / MARKER).is_file() and (p / "config.json").is_file()


def _is_run(p: Path) -> bool:
    return (p / "run.json").is_file() or any(_SPLIT_DIR.match(c.name) for c in _subdirs(p))


def _subdirs(p: Path) -> list[Path]:
    return sorted(c for c in p.iterdir() if c.is_dir()) if p.is_dir() else []


def list_runs(runs_dir: str | Path) -> list[Path]:
    """Run folders directly under ``runs_dir`` (sorted)."""
    return [c for c in _subdirs(Path(runs_dir)) if _is_run(c)]


def default_run(runs_dir: str | Path = "runs") -> Path:
    """The only run under ``runs_dir``; a PredictError listing them when there are none or several."""
    runs = list_runs(runs_dir)
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise PredictError(f"which model? no training run under {runs_dir}/: train one with `umbenet "
                           f"train`, or pass --run RUN_OR_CHECKPOINT_FOLDER")
    raise PredictError(f"which model? {len(runs)} runs under {runs_dir}/: "
                       f"{', '.join(r.name for r in runs)}. Pass one with --run {runs[0]}")


def run_splits(run: str | Path) -> list[Path]:
    """The fold folders (``fold1`` ...) or the ``train-test`` folder of a run folder, in fold
    order; [] for any other folder."""
    found = [c for c in _subdirs(Path(run)) if _SPLIT_DIR.match(c.name)]
    return sorted(found, key=lambda c: (int(c.name[4:]) if c.name.startswith("fold") else 0, c.name))


def _stage_checkpoint(stage_dir: Path, which: str) -> Path:
    ckpt = stage_dir / "checkpoints" / which
    if _is_checkpoint(ckpt):
        return ckpt
    have = [k for k in CHECKPOINT_KINDS if _is_checkpoint(stage_dir / "checkpoints" / k)]
    hint = (f"use --checkpoint {have[0]} (the stage has that one)" if have else
            "finish or resume its training (`umbenet train --resume --name ...`), or pass an "
            "earlier stage's folder with --run")
    raise PredictError(f"{stage_dir} has no complete '{which}' checkpoint (training not finished, "
                       f"or interrupted before its first save). Fix: {hint}")


def find_checkpoint(run: str | Path | None = None, which: str = "best", fold: int | None = None,
                    runs_dir: str | Path = "runs") -> Path:
    """The checkpoint folder to predict with.

    Args:
        run: a run, stage or checkpoint folder; None = the only run under ``runs_dir``.
        which: "best" (best validation epoch) or "last".
        fold: the fold to use when the run has several (run folders only).
    """
    if which not in CHECKPOINT_KINDS:
        raise PredictError(f"--checkpoint {which!r}: choose one of {list(CHECKPOINT_KINDS)}")
    p = resolve_model_folder(run) if run is not None else default_run(runs_dir)
    if not p.exists():
        raise PredictError(f"--run {p}: no such folder. Give a run folder (runs/<name>), one of its "
                           f"stage folders, or a checkpoint folder.")
    if _is_checkpoint(p) or (p / "checkpoints").is_dir():
        if fold is not None:
            raise PredictError(f"--fold {fold}: {p} is a single stage/checkpoint already; --fold only "
                               f"picks a fold of a run folder. Leave --fold out.")
        return p if _is_checkpoint(p) else _stage_checkpoint(p, which)
    if (p / "model.safetensors").is_file():
        raise PredictError(f"{p} is not a complete checkpoint (no {MARKER} marker: its save was "
                           f"interrupted). Use another checkpoint of the run (--checkpoint last/best).")
    splits = run_splits(p)
    if not splits:
        if (p / "run.json").is_file():
            raise PredictError(f"the run {p} has no checkpoint yet (no fold folders): its training "
                               f"never saved one. Train it (`umbenet train --resume --name {p.name}`) "
                               f"or pick another run.")
        raise PredictError(f"{p} is not a run, stage or checkpoint folder (it holds no run.json, no "
                           f"checkpoints/ and no {MARKER} marker). Pass --run runs/<name>.")
    if fold is not None:
        chosen = [s for s in splits if s.name == f"fold{fold}"]
        if not chosen:
            raise PredictError(f"--fold {fold}: the run {p} has {[s.name for s in splits]}")
        split = chosen[0]
    elif len(splits) == 1:
        split = splits[0]
    else:
        numbers = [s.name.removeprefix("fold") for s in splits]
        raise PredictError(f"the run {p} has several folds ({', '.join(numbers)}): pick the model "
                           f"with --fold N")
    for stage in FINAL_STAGE_ORDER:
        if (split / stage).is_dir():
            return _stage_checkpoint(split / stage, which)
    raise PredictError(f"the run {p} has no trained stage in {split} (no {'/'.join(FINAL_STAGE_ORDER)} "
                       f"folder): its training never saved a checkpoint. Train it first.")


def run_modalities(checkpoint: Path) -> tuple[str, ...]:
    """The modalities the run that wrote ``checkpoint`` trained on (from its run.json: in the folder
    itself for an exported model, else up to four folders up); all three when there is no run.json
    (a checkpoint copied on its own)."""
    here = checkpoint.resolve()
    for parent in [here, *list(here.parents)[:4]]:
        f = parent / "run.json"
        if f.is_file():
            try:
                mods = json.loads(f.read_text()).get("modalities")
            except (OSError, ValueError):
                return MODALITIES
            return tuple(m for m in MODALITIES if m in (mods or MODALITIES))
    return MODALITIES
