"""What one ``umbenet train`` run is asked to do; saved as ``run.json`` so it can be redone."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from umbenet_cli.errors import UserError
from umbenet_cli.model.config import MODALITIES, UMBEnetConfig

STAGES = ("1", "2", "both", "one")


def stage_names(stage: str) -> tuple[str, ...]:
    """The stage folders a ``--stage`` option trains, in order."""
    return {"1": ("stage1",), "2": ("stage2",), "both": ("stage1", "stage2"), "one": ("onestage",)}[stage]


def absolute(path: str | Path) -> Path:
    """``path`` made absolute and normalised (``..`` removed), symlinks kept as the user named them."""
    return Path(os.path.abspath(Path(path).expanduser()))


class TrainError(UserError, ValueError):
    """A training request that cannot run; names the option and the fix."""


@dataclass(frozen=True)
class TrainOptions:
    cache: Path
    run_dir: Path
    model: UMBEnetConfig
    stage: str = "both"
    fold: str | None = None  # "1".."5" or "all" for 5-fold caches; None for train/test caches
    modalities: tuple[str, ...] = MODALITIES
    # Classes left out of the whole run (their clips neither train, validate nor test, and they
    # get no class prompt), e.g. ("neutral",) for MAFW's 10-class protocol; see data.class_subset.
    exclude_classes: tuple[str, ...] = ()
    val_fraction: float = 0.1
    seed: int = 0
    init_from: Path | None = None  # stage 2 alone: a stage-1 run folder or checkpoint
    # One-stage ablation arm: every clip presents all the modalities it has (no random missing).
    all_modalities: bool = False
    device: str = "cpu"
    save_every: int = 0  # also checkpoint every N steps (0: at epoch ends only)
    max_steps: int | None = None  # stop each stage after N optimiser steps (smoke runs)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if self.stage not in STAGES:
            problems.append(f"--stage {self.stage!r}: choose one of {list(STAGES)} (one = the one-stage ablation)")
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities:
            problems.append(f"--modalities {','.join(self.modalities)}: choose among {list(MODALITIES)}")
        if not 0.0 < self.val_fraction < 0.5:
            problems.append(f"--val-fraction {self.val_fraction}: must be in (0, 0.5)")
        if self.all_modalities and self.stage != "one":
            problems.append(f"--all-modalities with --stage {self.stage}: it trains the one-stage ablation on every "
                            f"clip's full set of modalities; use it with --stage one")
        if self.save_every < 0 or (self.max_steps is not None and self.max_steps < 1):
            problems.append("--save-every must be >= 0 and --max-steps >= 1")
        if problems:
            raise TrainError("cannot train:\n  - " + "\n  - ".join(problems))

    @property
    def stage_names(self) -> tuple[str, ...]:
        return stage_names(self.stage)

    def split_dir(self, fold: int | None) -> Path:
        return self.run_dir / (f"fold{fold}" if fold is not None else "train-test")

    def to_json(self) -> str:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["cache"], d["run_dir"] = str(self.cache), str(self.run_dir)
        d["init_from"] = str(self.init_from) if self.init_from else None
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str, **changes) -> "TrainOptions":
        d = json.loads(text)
        d["model"] = UMBEnetConfig.from_saved(d["model"])
        d["cache"], d["run_dir"] = Path(d["cache"]), Path(d["run_dir"])
        d["init_from"] = Path(d["init_from"]) if d["init_from"] else None
        d["modalities"] = tuple(d["modalities"])
        d["exclude_classes"] = tuple(d.get("exclude_classes") or ())
        d.setdefault("all_modalities", False)  # run.json written before the option existed
        return replace(cls(**d), **changes)
