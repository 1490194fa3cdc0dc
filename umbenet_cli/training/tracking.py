"""Live curves in TensorBoard or Weights & Biases, beside ``metrics.jsonl`` (the source of truth).

``umbenet train --logger tensorboard|wandb|none`` (default tensorboard). Each stage logs into its
own folder, so ``tensorboard --logdir runs`` shows every run, fold and stage::

    runs/<name>/<fold>/<stage>/tensorboard/events.out.tfevents...    (--logger tensorboard)
    runs/<name>/<fold>/<stage>/wandb/...                            (--logger wandb)
    runs/<name>/<fold>/<stage>/tracking.json                        which logger, the W&B run id

What is logged, always at the stage's global step (optimiser steps from the stage's start):

    train_step/loss_{total,ce,l1,gate_l1,key}, train_step/lr     every step (this rank's batch)
    epoch/{train,val}_{uar,war}, epoch/train_loss, epoch/val_loss,
    epoch/lr, epoch/clips_per_s, epoch/steps_per_s                every epoch, the metrics.jsonl line
    epoch/val_{uar,loss}_{video,audio,text}                        stage 1 validated per modality
    prompts/selections_<subset>, prompts/used_<subset>            selection counts so far per subset
    prompts/selected (histogram of prompt indices)
    summary/{best_val_uar,best_val_war,best_epoch,epochs}         when the stage ends
    eval_<split>/{uar,war}_<subset>, eval_<split>/confusion_<subset>   from `umbenet eval`

Only rank 0 logs. A resumed stage continues the same curves: TensorBoard is told to purge
events after the step the checkpoint was taken at (``purge_step``), so steps logged after it and
before the interruption are replaced, never duplicated. W&B never contacts a server unless the
user configured it: ``WANDB_MODE`` is respected, and without an API key W&B runs offline.

``umbenet eval`` adds to the training run's W&B run (same id, ``resume="must"``) when W&B is
online. Offline it adds nothing there and says so: W&B cannot append to an offline run, and a
second offline run folder with the same id would, once synced, replace the training run's
history instead of adding to it (wandb/wandb#3841). The scores stay in the eval folder; after
``wandb sync`` of the training run, ``umbenet eval`` with W&B online adds them.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from umbenet_cli.errors import UserError

log = logging.getLogger(__name__)
LOGGERS = ("tensorboard", "wandb", "none")
SUBSET_NAMES = {1: "V", 2: "A", 3: "V+A", 4: "T", 5: "V+T", 6: "A+T", 7: "V+A+T"}  # bit codes, model.subset_code


class TrackingError(UserError, ValueError):
    """A --logger that cannot be used here; names the fix."""


def check_logger(kind: str) -> str:
    """``kind`` when it can be used here; TrackingError (exit 2) otherwise, before any training."""
    if kind not in LOGGERS:
        raise TrackingError(f"--logger {kind!r}: choose one of {list(LOGGERS)}")
    if kind == "tensorboard":
        try:
            import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        except ImportError:
            raise TrackingError("--logger tensorboard: the tensorboard package is not installed. Fix: "
                                "`pip install tensorboard`, or --logger none") from None
    if kind == "wandb":
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise TrackingError("--logger wandb: the wandb package is not installed (it is an optional "
                                "extra). Fix: `pip install 'umbenet[wandb]'` (or `pip install wandb`), or use "
                                "--logger tensorboard") from None
    return kind


def wandb_mode() -> str:
    """WANDB_MODE when set; else online only with an API key configured, offline otherwise."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    netrc = Path.home() / ".netrc"
    configured = bool(os.environ.get("WANDB_API_KEY")) or (netrc.is_file() and "api.wandb.ai" in netrc.read_text())
    return "online" if configured else "offline"


def epoch_scalars(line: dict) -> dict[str, float]:
    """The scalars of one metrics.jsonl line, by tag (what TensorBoard/W&B get for that epoch)."""
    out = {"epoch/train_loss": line["train"]["total"], "epoch/train_uar": line["train"]["uar"],
           "epoch/train_war": line["train"]["war"], "epoch/val_loss": line["val"]["loss"],
           "epoch/val_uar": line["val"]["uar"], "epoch/val_war": line["val"]["war"], "epoch/lr": line["lr"],
           "epoch/clips_per_s": line["clips_per_s"], "epoch/steps_per_s": line["steps_per_s"],
           "epoch/epoch": float(line["epoch"])}
    for m, v in (line["val"].get("per_modality") or {}).items():  # stage 1, each modality alone
        out[f"epoch/val_uar_{m}"], out[f"epoch/val_loss_{m}"] = v["uar"], v["loss"]
    counts = line.get("pool_counts")
    if counts is not None:
        counts = np.asarray(counts)
        for code, name in SUBSET_NAMES.items():
            if code < len(counts) and counts[code].sum() > 0:
                out[f"prompts/selections_{name}"] = float(counts[code].sum())
                out[f"prompts/used_{name}"] = float((counts[code] > 0).sum())
    return {k: float(v) for k, v in out.items()}


class Tracker:
    """The no-op logger (``--logger none``, ranks other than 0); the interface of the others."""

    kind = "none"

    def step(self, step: int, losses: dict[str, float], lr: float) -> None: ...
    def epoch(self, line: dict) -> None: ...
    def summary(self, result: dict) -> None: ...
    def scalars(self, step: int, values: dict[str, float]) -> None: ...
    def image(self, step: int, tag: str, png: Path) -> None: ...
    def close(self) -> None: ...

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TensorBoardTracker(Tracker):
    kind = "tensorboard"

    def __init__(self, folder: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"), purge_step=purge_step)

    def step(self, step: int, losses: dict[str, float], lr: float) -> None:
        for k, v in losses.items():
            self.writer.add_scalar(f"train_step/loss_{k}", v, step)
        self.writer.add_scalar("train_step/lr", lr, step)

    def epoch(self, line: dict) -> None:
        self.scalars(line["global_step"], epoch_scalars(line))
        if line.get("pool_counts") is not None:
            per_prompt = np.asarray(line["pool_counts"]).sum(0)
            if per_prompt.sum() > 0:
                self.writer.add_histogram("prompts/selected", np.repeat(np.arange(len(per_prompt)), per_prompt),
                                          line["global_step"], bins=np.arange(len(per_prompt) + 1) - 0.5)

    def summary(self, result: dict) -> None:
        self.scalars(result["global_step"], summary_scalars(result))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def image(self, step: int, tag: str, png: Path) -> None:
        import matplotlib.image

        self.writer.add_image(tag, matplotlib.image.imread(str(png))[..., :3], step, dataformats="HWC")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class WandbTracker(Tracker):
    kind = "wandb"

    def __init__(self, folder: Path, name: str, run_id: str, config: dict | None, resume: str = "allow") -> None:
        import wandb

        mode = wandb_mode()
        if mode == "offline":
            log.info("W&B offline (no WANDB_MODE, no API key): files under %s/wandb; `wandb sync` uploads them", folder)
        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "umbenet"), name=name, id=run_id,
                              dir=str(folder), mode=mode, resume=resume, config=config, reinit="create_new")
        self.last_step = -1

    def _log(self, step: int, values: dict) -> None:
        if step < self.last_step:  # W&B drops steps that go back; a resumed stage starts after its checkpoint
            return
        self.run.log(values, step=step)
        self.last_step = step

    def step(self, step: int, losses: dict[str, float], lr: float) -> None:
        self._log(step, {**{f"train_step/loss_{k}": v for k, v in losses.items()}, "train_step/lr": lr})

    def epoch(self, line: dict) -> None:
        self._log(line["global_step"], epoch_scalars(line))

    def summary(self, result: dict) -> None:
        for k, v in summary_scalars(result).items():
            self.run.summary[k] = v

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self._log(max(step, self.last_step), values)

    def image(self, step: int, tag: str, png: Path) -> None:
        self._log(max(step, self.last_step), {tag: self.wandb.Image(str(png))})

    def close(self) -> None:
        self.run.finish()


def summary_scalars(result: dict) -> dict[str, float]:
    return {"summary/best_val_uar": float(result["best_val_uar"]), "summary/best_val_war": float(result["best_val_war"]),
            "summary/best_epoch": float(result["best_epoch"]), "summary/epochs": float(result["epochs"])}


def open_tracker(kind: str, folder: Path, main: bool = True, resumed_at: int | None = None,
                 config: dict | None = None) -> Tracker:
    """The logger of one stage folder. ``resumed_at``: the global step the stage resumed from
    (its later events are purged so the curves continue without repeated steps)."""
    if not main or kind == "none":
        return Tracker()
    info_file = folder / "tracking.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    if kind == "wandb":
        import uuid

        info.setdefault("wandb_id", uuid.uuid4().hex[:12])
        info["logger"] = kind
        info_file.write_text(json.dumps(info, indent=2))
        parts = folder.resolve().parts
        return WandbTracker(folder, "/".join(parts[-3:]), info["wandb_id"], config)
    info["logger"] = kind
    info_file.write_text(json.dumps(info, indent=2))
    return TensorBoardTracker(folder, purge_step=None if resumed_at is None else resumed_at + 1)


def open_for_eval(folder: Path) -> Tracker:
    """The logger a stage was trained with (tracking.json), reopened to add evaluation results."""
    info_file = folder / "tracking.json"
    if not info_file.is_file():
        return Tracker()
    info = json.loads(info_file.read_text())
    kind = info.get("logger", "none")
    try:
        check_logger(kind)
    except TrackingError as exc:
        log.warning("eval results not added to the %s log: %s", kind, exc)
        return Tracker()
    if kind == "wandb":
        return _wandb_for_eval(folder, info["wandb_id"])
    return TensorBoardTracker(folder) if kind == "tensorboard" else Tracker()


def _wandb_for_eval(folder: Path, run_id: str) -> Tracker:
    """The training run's own W&B run, reopened online; the no-op logger offline (see the module
    docstring) or when the server does not have that run, each with a warning that says why."""
    mode = wandb_mode()
    if mode == "disabled":
        return Tracker()
    if mode not in ("online", "run", "shared"):  # "run": wandb's old name for online
        log.warning("eval scores not added to W&B run %s (%s): W&B is %s and cannot append to an offline run "
                    "(a second one with the same id would replace the training curves when synced). They are "
                    "in the eval folder; to add them: `wandb sync %s/wandb/offline-run-*-%s`, then run "
                    "`umbenet eval` again with W&B online (WANDB_MODE=online, logged in)",
                    run_id, folder, mode, folder, run_id)
        return Tracker()
    try:
        return WandbTracker(folder, "/".join(folder.resolve().parts[-3:]), run_id, None, resume="must")
    except Exception as exc:  # noqa: BLE001 - wandb raises its own errors (e.g. no such run to resume)
        log.warning("eval scores not added to W&B run %s (%s): %s: %s. If the run was trained offline, "
                    "`wandb sync %s/wandb` first", run_id, folder, type(exc).__name__, exc, folder)
        return Tracker()


def log_eval(results: dict, stage_dir: Path, out_dir: Path) -> None:
    """Add one stage's evaluation (UAR/WAR per subset, the confusion PNG of each) to its log."""
    result_file = stage_dir / "result.json"
    step = json.loads(result_file.read_text())["global_step"] if result_file.is_file() else 0
    tag = results["split"] + ("-drop-" + "-".join(results["dropped"]) if results.get("dropped") else "")
    with open_for_eval(stage_dir) as tracker:
        values = {}
        for e in results["subsets"]:
            for k in ("uar", "war"):
                if e[k] is not None:
                    values[f"eval_{tag}/{k}_{e['name']}"] = float(e[k])
        tracker.scalars(step, values)
        for e in results["subsets"]:
            png = out_dir / f"confusion_{e['name']}_norm.png"
            if png.is_file():
                tracker.image(step, f"eval_{tag}/confusion_{e['name']}", png)
