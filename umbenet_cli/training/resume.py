"""Continuing a run: ``umbenet train`` on a run folder that already holds ``run.json``.

The run folder is the one named on the command line (``--runs-dir``/``--name``), where run.json
lies, never the folder run.json recorded: a copied or moved run resumes itself. Paths are
recorded resolved (absolute), so a run resumes from any working directory.

What an option given on an existing run does (``--resume``, or a ``--stage`` the run lacks):

==========================================  =====================================================
option                                      on an existing run
==========================================  =====================================================
``--stage``                                 adds the stage(s) the run lacks (1, then 2: both);
                                            the one-stage ablation does not mix with 1/2: refused
``--set optim.max_epochs=N``,               applied: a stage that stopped at the old limit goes
``--max-steps N``                           on from its last checkpoint
``--set backbone=PATH``                     applied when its weights are the cache's (fingerprint)
``--cache DIR``                             applied when it holds the run's clips (a moved cache)
``--device``, ``--gpus``, ``--nproc``,      applied: where and how often, not what is trained
launch options, ``--save-every``,
``--logger``
``--preset``, any other ``--set``,          refused unless equal to the recorded value: they
``--fold``, ``--modalities``,               change what the finished steps trained; train
``--exclude-classes``, ``--val-fraction``,  another run (``--name``) instead
``--seed``, ``--init-from``,
``--all-modalities``
==========================================  =====================================================
"""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from umbenet_cli.data.class_subset import parse_class_names
from umbenet_cli.model.config import UMBEnetConfig
from umbenet_cli.training.loop import MAX_EPOCHS_STOP, MAX_STEPS_STOP
from umbenet_cli.training.options import TrainError, TrainOptions, absolute

# Config keys a started run may change (with --set); every other key is part of what it trained.
CHANGEABLE_KEYS = ("optim.max_epochs", "backbone")
# Options compared with the recorded value: a different one is refused.
FIXED_OPTIONS = ("fold", "modalities", "exclude_classes", "val_fraction", "seed", "init_from", "all_modalities")
# Options applied as given: where and how the run goes on, not what it trains.
HOW_OPTIONS = ("device", "save_every", "max_steps")
_STAGE_SETS = {"1": {"stage1"}, "2": {"stage2"}, "both": {"stage1", "stage2"}, "one": {"onestage"}}


def resume_command(run_dir: Path) -> str:
    """The command that continues the run in ``run_dir``, from anywhere."""
    return f"umbenet train --runs-dir {run_dir.parent} --name {run_dir.name} --resume"


def merge_stages(recorded: str, given: str) -> str:
    """The stage option of a run that had ``recorded`` and is asked for ``given`` too."""
    union = _STAGE_SETS[recorded] | _STAGE_SETS[given]
    for name, stages in _STAGE_SETS.items():
        if stages == union:
            return name
    raise TrainError(f"--stage {given}: this run trained --stage {recorded}; the one-stage ablation and the "
                     f"two stages do not share a run. Train it under another --name")


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _config_changes(recorded: UMBEnetConfig, recorded_preset: str | None, preset: str | None,
                    sets: dict[str, str]) -> tuple[dict, list[str]]:
    """(the --set keys to apply, the refused differences) of a config request on a started run.
    ``--preset`` the run was made with is no change; runs that did not record theirs compare the
    preset's values."""
    classes = {"classes": list(recorded.classes)}
    if preset is not None and preset == recorded_preset:
        preset = None
    wanted = (UMBEnetConfig.preset(preset, **{**sets, **classes}) if preset is not None
              else recorded.override(sets))
    a, b = _flat(recorded.to_dict()), _flat(wanted.to_dict())
    apply, refused = {}, []
    for key in sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)):
        if key in sets and key in CHANGEABLE_KEYS:
            apply[key] = sets[key]
        elif key in sets:
            refused.append(f"--set {key}={sets[key]}: the run trained with {a.get(key)!r}")
        else:
            refused.append(f"--preset {preset}: {key} would be {b.get(key)!r}, the run trained with {a.get(key)!r}"
                           + (f" (preset {recorded_preset})" if recorded_preset else ""))
    return apply, refused


def _same(option: str, recorded: Any, given: Any) -> bool:
    if option == "init_from":
        return (absolute(given) if given else None) == recorded
    if option == "exclude_classes":
        return set(parse_class_names(given)) == set(recorded)
    if option == "modalities":
        return tuple(given) == tuple(recorded)
    if option == "fold":
        return (given or None) == recorded
    return given == recorded


def continue_run(run_dir: Path, given: dict[str, Any], resume: bool) -> tuple[TrainOptions, list[str]]:
    """The options to continue the run in ``run_dir`` with the options the user ``given``
    (name -> value, only those on the command line; ``set`` is the parsed --set dict).

    Returns (options, notes: one line per change applied). Raises TrainError naming every
    refused option, or when nothing asks to continue (no --resume, no new stage).
    """
    run_dir = absolute(run_dir)
    try:
        recorded = TrainOptions.from_json((run_dir / "run.json").read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainError(f"cannot read {run_dir / 'run.json'} ({type(exc).__name__}: {exc}); it is written by "
                         f"`umbenet train`: restore it, or train under another --name") from None
    changes: dict[str, Any] = {"run_dir": run_dir}
    notes, refused = [], []
    if "stage" in given and merge_stages(recorded.stage, given["stage"]) != recorded.stage:
        changes["stage"] = merge_stages(recorded.stage, given["stage"])
        notes.append(f"--stage {given['stage']}: the run goes on as --stage {changes['stage']} "
                     f"(was {recorded.stage}); finished stages are kept")
    elif not resume:
        raise TrainError(f"{run_dir} already holds a run: continue it with --resume "
                         f"(`{resume_command(run_dir)}`), or pick another --name")
    if "preset" in given or given.get("set"):
        apply, bad = _config_changes(recorded.model, recorded.extra.get("preset"), given.get("preset"),
                                     given.get("set") or {})
        refused += bad
        if apply:
            changes["model"] = recorded.model.override(apply)
            notes += [f"--set {k}={v} (was {_flat(recorded.model.to_dict())[k]!r})" for k, v in apply.items()]
    for option in FIXED_OPTIONS:
        if option in given and not _same(option, getattr(recorded, option), given[option]):
            refused.append(f"--{option.replace('_', '-')} {given[option]}: the run trained with {getattr(recorded, option)}")
    for option in HOW_OPTIONS:
        if option in given and given[option] != getattr(recorded, option):
            changes[option] = given[option]
            notes.append(f"--{option.replace('_', '-')} {given[option]} (was {getattr(recorded, option)})")
    if refused:
        raise TrainError(f"cannot change what the run in {run_dir} trained:\n  - " + "\n  - ".join(refused)
                         + f"\n  Continue it as recorded (`{resume_command(run_dir)}`), or train another --name.")
    cache = absolute(given["cache"]) if "cache" in given else recorded.cache
    if cache != recorded.cache:
        changes["cache"] = cache
        notes.append(f"--cache {cache} (was {recorded.cache}); checked to hold the same clips")
    elif not (cache / "features").is_dir():
        raise TrainError(f"the run's cache {cache} is not there (moved or deleted?): pass the same cache with "
                         f"--cache DIR")
    return replace(recorded, **changes), notes


def cache_digest(clip_ids, labels, folds, splits) -> str:
    """What a run trained on, independent of where the cache lies: its clips, labels and folds."""
    h = hashlib.sha256()
    order = np.argsort(np.asarray(clip_ids, dtype=object).astype(str))
    for i in order:
        h.update(f"{clip_ids[i]}\t{int(labels[i])}\t{int(folds[i])}\t{splits[i]}\n".encode())
    return h.hexdigest()[:16]


def check_same_clips(opts: TrainOptions, digest: str) -> None:
    """A continued run's cache must hold the clips it started on (recorded as ``extra['cache_digest']``)."""
    before = opts.extra.get("cache_digest")
    if before is not None and before != digest:
        raise TrainError(f"the cache {opts.cache} holds other clips, labels or folds than the run started on "
                         f"(digest {digest}, recorded {before}): pass the run's own cache with --cache DIR")


def reopens(result: dict, opts: TrainOptions) -> bool:
    """Whether a finished stage (its result.json) goes on under raised limits."""
    reason = result.get("stop_reason") or ""
    if reason.startswith(MAX_EPOCHS_STOP):
        return opts.model.optim.max_epochs > result["epochs"]
    if reason.startswith(MAX_STEPS_STOP):
        return opts.max_steps is None or opts.max_steps > result["global_step"]
    return False


def recorded_json(opts: TrainOptions, digest: str) -> str:
    """run.json's text: the options with the cache's digest."""
    return replace(opts, extra={**opts.extra, "cache_digest": digest}).to_json()

