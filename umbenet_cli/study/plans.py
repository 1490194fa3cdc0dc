"""What a study trains: named plans (the paper's Tables 3 and 4, the training-strategy ablation)
and TOML plan files, as a list of ``RunSpec`` (a run name and the options ``umbenet train`` takes).

A plan says nothing about folds, class settings, caches or devices: ``study.matrix`` multiplies
it by the folds and class settings asked for. A plan file is checked in full before anything
starts; every problem is reported at once (``PlanError``).

    [[run]]                      # a TOML plan: name + the options of `umbenet train`
    name = "two_stage"
    [[run]]
    name = "carry_all"
    stage = "2"
    init_from = "two_stage"      # another run of the plan: its stage 1, same fold and classes
    set = { "pool.transfer" = "all" }
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from umbenet_cli.errors import UserError
from umbenet_cli.model.config import ConfigError, UMBEnetConfig
from umbenet_cli.reporting.published import TABLE4

MODALITIES = ("video", "audio", "text")
STAGES = ("1", "2", "both", "one")
NAMED = ("table3", "table4", "paper", "ablation")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Options of `umbenet train` a plan run may set; the study sets the others (cache, name, fold,
# devices) or they make no sense in a plan (resume).
RUN_KEYS = ("name", "preset", "set", "stage", "modalities", "exclude_classes", "val_fraction", "seed", "init_from",
            "all_modalities", "save_every", "max_steps", "logger")
STUDY_SET_KEYS = {"cache": "--cache", "fold": "--fold", "runs_dir": "--runs-dir", "resume": "(the study resumes runs itself)",
                  "device": "--gpus", "gpus": "--gpus", "nproc": "--gpus-per-job", "nnodes": "--launcher slurm",
                  "node_rank": "--launcher slurm", "master_addr": "--launcher slurm", "master_port": "--launcher slurm"}
SUBSETS = {"V": ("video",), "A": ("audio",), "T": ("text",), "V+T": ("video", "text"), "V+A": ("video", "audio"),
           "V+A+T": MODALITIES}


class PlanError(UserError, ValueError):
    """A plan that cannot run; the message lists every problem and the fix."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a plan: what ``umbenet train`` is asked, fold and classes aside.

    epoch_factor: optim.max_epochs of the run = the study's max_epochs x this (a one-stage arm
    trains as many epochs as both stages of a two-stage run). roles: where the run appears in the
    paper's tables, e.g. ``{"table": "3", "subset": "V"}``, ``{"table": "4", "length": 64, ...}``."""

    name: str
    stage: str = "both"
    modalities: tuple[str, ...] = MODALITIES
    sets: dict[str, str] = field(default_factory=dict)
    preset: str | None = None
    exclude_classes: tuple[str, ...] = ()
    val_fraction: float | None = None
    seed: int | None = None
    init_from: str | None = None  # another run of the plan (same fold and classes)
    all_modalities: bool = False
    save_every: int | None = None
    max_steps: int | None = None
    logger: str | None = None
    epoch_factor: int = 1
    roles: tuple[dict, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "stage": self.stage, "modalities": list(self.modalities), "set": dict(self.sets),
                "preset": self.preset, "exclude_classes": list(self.exclude_classes), "val_fraction": self.val_fraction,
                "seed": self.seed, "init_from": self.init_from, "all_modalities": self.all_modalities,
                "save_every": self.save_every, "max_steps": self.max_steps, "logger": self.logger,
                "epoch_factor": self.epoch_factor, "roles": [dict(r) for r in self.roles]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        return cls(name=d["name"], stage=d["stage"], modalities=tuple(d["modalities"]), sets=dict(d["set"]),
                   preset=d.get("preset"), exclude_classes=tuple(d.get("exclude_classes") or ()),
                   val_fraction=d.get("val_fraction"), seed=d.get("seed"), init_from=d.get("init_from"),
                   all_modalities=bool(d.get("all_modalities")), save_every=d.get("save_every"),
                   max_steps=d.get("max_steps"), logger=d.get("logger"), epoch_factor=int(d.get("epoch_factor", 1)),
                   roles=tuple(d.get("roles") or ()))


@dataclass(frozen=True)
class Plan:
    name: str
    runs: tuple[RunSpec, ...]
    source: str  # "table3", ..., or the TOML file's path

    def run(self, name: str) -> RunSpec:
        return next(r for r in self.runs if r.name == name)


# ----------------------------------------------------------------------------- named plans
def _pool_sets(length: int, size: int, top_k: int) -> dict[str, str]:
    """Table 4's pool cell as config keys: its Length is the TOTAL prompt length, split in halves
    between the pool prompts and the inherent prompts (64 = 32 + 32), as the presets split it."""
    return {"pool.length": str(length // 2), "inherent_length": str(length // 2), "pool.size": str(size),
            "pool.top_k": str(top_k)}


def _pool_of(config: UMBEnetConfig) -> tuple[int, int, int]:
    """(total length, size, top-k) of a config's pool, in Table 4's terms."""
    return config.pool.length + config.inherent_length, config.pool.size, config.pool.top_k


def table3_runs() -> list[RunSpec]:
    """Table 3: models trained on V, A, T, V+T, V+A and the full model (evaluated on every subset:
    its missing-modality block). The paper has no A+T model."""
    runs = [RunSpec(f"subset-{s.replace('+', '')}", modalities=m, roles=({"table": "3", "subset": s},))
            for s, m in SUBSETS.items() if s != "V+A+T"]
    return runs + [RunSpec("full", roles=({"table": "3", "subset": "V+A+T"}, {"table": "3", "subset": "missing"}))]


def table4_runs(full: UMBEnetConfig) -> list[RunSpec]:
    """Table 4: the published pool cells (2-stage) and the one-stage arm at the default pool. The
    cell equal to the full model (the preset's pool, ``full``) is that run, not trained twice."""
    cells = sorted({(a.length, a.size, a.top_k) for a in TABLE4 if a.strategy == "2-stage"})
    runs = []
    for length, size, top_k in cells:
        role = {"table": "4", "length": length, "size": size, "top_k": top_k, "strategy": "2-stage"}
        if (length, size, top_k) == _pool_of(full):
            runs.append(RunSpec("full", roles=(role,)))
        else:
            runs.append(RunSpec(f"pool-L{length}-N{size}-K{top_k}", sets=_pool_sets(length, size, top_k), roles=(role,)))
    one = next(a for a in TABLE4 if a.strategy == "1-stage")
    same = (one.length, one.size, one.top_k) == _pool_of(full)
    runs.append(RunSpec("one_stage", stage="one", epoch_factor=2,
                        sets={} if same else _pool_sets(one.length, one.size, one.top_k),
                        roles=({"table": "4", "length": one.length, "size": one.size, "top_k": one.top_k,
                                "strategy": "1-stage"},)))
    return runs


def ablation_runs() -> list[RunSpec]:
    """The training-strategy ablation at equal epoch budgets: a one-stage arm trains the epochs of
    both stages; the carry arms take stage 1 from ``two_stage`` (same fold) and train stage 2 only."""
    arm = lambda name: ({"table": "ablation", "arm": name},)  # noqa: E731
    return [RunSpec("two_stage", roles=arm("two_stage")),
            RunSpec("one_stage", stage="one", epoch_factor=2, roles=arm("one_stage")),
            RunSpec("one_stage_all_modalities", stage="one", all_modalities=True, epoch_factor=2,
                    roles=arm("one_stage_all_modalities")),
            RunSpec("two_stage_carry_all", stage="2", init_from="two_stage", sets={"pool.transfer": "all"},
                    roles=arm("two_stage_carry_all")),
            RunSpec("two_stage_carry_none", stage="2", init_from="two_stage", sets={"pool.transfer": "none"},
                    roles=arm("two_stage_carry_none"))]


def _merge(runs: list[RunSpec]) -> list[RunSpec]:
    """Runs of one name (``full`` in Tables 3 and 4) become one run with both roles."""
    out: dict[str, RunSpec] = {}
    for r in runs:
        if r.name in out:
            out[r.name] = replace(out[r.name], roles=out[r.name].roles + r.roles)
        else:
            out[r.name] = r
    return list(out.values())


def named_plan(name: str, preset: str, sets: dict[str, str]) -> Plan:
    full = _config(preset, sets, "--set")
    if name == "table3":
        runs = table3_runs()
    elif name == "table4":
        runs = table4_runs(full)
    elif name == "paper":
        runs = _merge(table3_runs() + table4_runs(full))
    elif name == "ablation":
        runs = ablation_runs()
    else:
        raise PlanError(f"plan {name!r}: choose one of {list(NAMED)} or pass a TOML plan file (that file does not exist)")
    return Plan(name, tuple(runs), name)


def _config(preset: str, sets: dict[str, str], where: str) -> UMBEnetConfig:
    try:
        return UMBEnetConfig.preset(preset, **sets)
    except ConfigError as exc:
        raise PlanError(f"{where}: " + "; ".join(exc.problems)) from None


# ------------------------------------------------------------------------------ TOML plans
def _as_sets(value: Any, where: str, problems: list[str]) -> dict[str, str]:
    """``set`` of a plan run: a table {"pool.size" = 16} or a list ["pool.size=16"]."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}

        def walk(d: dict, prefix: str) -> None:  # TOML reads pool.size = 16 (unquoted) as a nested table
            for k, v in d.items():
                if isinstance(v, dict):
                    walk(v, f"{prefix}{k}.")
                else:
                    flat[f"{prefix}{k}"] = str(v).lower() if isinstance(v, bool) else str(v)
        walk(value, "")
        return flat
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        out = {}
        for item in value:
            key, sep, val = item.partition("=")
            if not sep or not key.strip():
                problems.append(f"{where}: set item {item!r} is not KEY=VALUE (e.g. \"pool.size=16\")")
            else:
                out[key.strip()] = val.strip()
        return out
    problems.append(f"{where}: set = {value!r}: give a table ({{ \"pool.size\" = 16 }}) or a list of \"KEY=VALUE\"")
    return {}


def _typed(d: dict, key: str, kind: type | tuple, where: str, problems: list[str]) -> Any:
    value = d.get(key)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        problems.append(f"{where}: {key} = {value!r}: must be a {name}")
        return None
    return value


def _run_from_toml(d: Any, index: int, problems: list[str]) -> RunSpec | None:
    where = f"run {index + 1}"
    if not isinstance(d, dict):
        problems.append(f"{where}: each [[run]] must be a table with a name and options")
        return None
    d = {k.replace("-", "_"): v for k, v in d.items()}
    name = d.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"{where}: name = {name!r}: give a name of letters, digits, '_', '.', '-' (it names the run folder)")
        name = None
    else:
        where = f"run {name!r}"
    for key in d:
        if key in STUDY_SET_KEYS:
            problems.append(f"{where}: {key!r} is set for the whole study ({STUDY_SET_KEYS[key]}), not per run")
        elif key not in RUN_KEYS:
            problems.append(f"{where}: unknown key {key!r}; valid keys = {sorted(RUN_KEYS)}")
    stage = d.get("stage", "both")
    stage = str(stage) if isinstance(stage, (str, int)) else stage
    if stage not in STAGES:
        problems.append(f"{where}: stage = {d.get('stage')!r}: choose one of {list(STAGES)}")
    mods = d.get("modalities", list(MODALITIES))
    if isinstance(mods, str):
        mods = [m.strip() for m in mods.split(",") if m.strip()]
    if not isinstance(mods, list) or not mods or any(m not in MODALITIES for m in mods):
        problems.append(f"{where}: modalities = {d.get('modalities')!r}: choose among {list(MODALITIES)}, "
                        f"e.g. \"video,text\"")
        mods = list(MODALITIES)
    excl = d.get("exclude_classes", [])
    if isinstance(excl, str):
        excl = [c.strip() for c in excl.split(",") if c.strip()]
    if not isinstance(excl, list) or not all(isinstance(c, str) for c in excl):
        problems.append(f"{where}: exclude_classes = {excl!r}: give class names, e.g. \"neutral\"")
        excl = []
    val_fraction = _typed(d, "val_fraction", float, where, problems)
    if val_fraction is not None and not 0.0 < val_fraction < 0.5:
        problems.append(f"{where}: val_fraction = {val_fraction}: must be in (0, 0.5)")
    for key in ("save_every", "max_steps"):
        v = _typed(d, key, int, where, problems)
        if v is not None and v < (0 if key == "save_every" else 1):
            problems.append(f"{where}: {key} = {v}: must be >= {0 if key == 'save_every' else 1}")
    all_mod = _typed(d, "all_modalities", bool, where, problems) or False
    if all_mod and stage != "one":
        problems.append(f"{where}: all_modalities = true needs stage = \"one\" (the one-stage ablation arm)")
    logger = _typed(d, "logger", str, where, problems)
    if logger is not None and logger not in ("tensorboard", "wandb", "none"):
        problems.append(f"{where}: logger = {logger!r}: choose tensorboard, wandb or none")
    if name is None:
        return None
    return RunSpec(name=name, stage=stage if stage in STAGES else "both", modalities=tuple(m for m in MODALITIES if m in mods),
                   sets=_as_sets(d["set"], where, problems) if "set" in d else {},
                   preset=_typed(d, "preset", str, where, problems), exclude_classes=tuple(excl),
                   val_fraction=val_fraction, seed=_typed(d, "seed", int, where, problems),
                   init_from=_typed(d, "init_from", str, where, problems), all_modalities=all_mod,
                   save_every=d.get("save_every") if isinstance(d.get("save_every"), int) else None,
                   max_steps=d.get("max_steps") if isinstance(d.get("max_steps"), int) else None, logger=logger)


def check_runs(runs: list[RunSpec], preset: str, sets: dict[str, str], problems: list[str]) -> None:
    """Problems across runs: repeated names, init_from, every run's config (preset + sets)."""
    names = [r.name for r in runs]
    for n in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"run {n!r}: the name appears {names.count(n)} times; run names must differ")
    by_name = {r.name: r for r in runs}
    for r in runs:
        where = f"run {r.name!r}"
        if r.init_from is not None:
            src = by_name.get(r.init_from)
            if src is None:
                problems.append(f"{where}: init_from = {r.init_from!r}: no run of the plan has that name "
                                f"(runs: {names})")
            elif src.stage not in ("both", "1") or src.init_from:
                problems.append(f"{where}: init_from = {r.init_from!r}: that run trains no stage 1 of its own "
                                f"(its stage is {src.stage!r}); take stage 1 from a run with stage \"both\" or \"1\"")
            if r.stage != "2":
                problems.append(f"{where}: init_from needs stage = \"2\" (stage 2 starts from the other run's stage 1)")
        try:
            UMBEnetConfig.preset(r.preset or preset, **{**sets, **r.sets})
        except ConfigError as exc:
            problems += [f"{where}: {p}" for p in exc.problems]


def load_plan_file(path: Path, preset: str, sets: dict[str, str]) -> Plan:
    """A TOML plan: ``name`` (optional, default: the file's stem) and ``[[run]]`` tables."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read the plan {path} ({exc}); pass a TOML file or one of {list(NAMED)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"the plan {path} is not valid TOML ({exc}); fix the file") from None
    problems: list[str] = []
    for key in data:
        if key not in ("name", "description", "run"):
            problems.append(f"unknown top-level key {key!r}; valid keys = ['description', 'name', 'run'] "
                            f"(runs go in [[run]] tables)")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"name = {name!r}: give a name of letters, digits, '_', '.', '-' (it names runs/<name>)")
    raw = data.get("run")
    if not isinstance(raw, list) or not raw:
        problems.append("no runs: list them as [[run]] tables, each with a name and `umbenet train` options")
        raw = []
    runs = [r for r in (_run_from_toml(d, i, problems) for i, d in enumerate(raw)) if r is not None]
    check_runs(runs, preset, sets, problems)
    if problems:
        raise PlanError(f"the plan {path} cannot run ({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems))
    return Plan(str(name), tuple(runs), str(path))


def load_plan(plan: str, preset: str, sets: dict[str, str]) -> Plan:
    """A named plan or a TOML file; PlanError (exit 2) when it cannot run."""
    path = Path(plan)
    if plan in NAMED and not path.is_file():
        found = named_plan(plan, preset, sets)
        problems: list[str] = []
        check_runs(list(found.runs), preset, sets, problems)
        if problems:
            raise PlanError(f"plan {plan} cannot run with these options:\n  - " + "\n  - ".join(problems))
        return found
    if not path.is_file():
        raise PlanError(f"plan {plan!r}: choose one of {list(NAMED)} or pass a TOML plan file (no such file)")
    return load_plan_file(path, preset, sets)
