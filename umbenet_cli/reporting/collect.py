"""Find evaluated runs and read what ``umbenet train`` and ``umbenet eval`` wrote.

A run (``runs/<name>``) holds one folder per fold (``fold1``..``fold5`` or ``train-test``); in
each, the final stage (stage2, else onestage, else stage1, as ``umbenet eval`` picks it) holds
``eval/<split>/results.json``. Runs whose run.json agree on everything but the fold (e.g. the five
folds trained as five runs on five machines) are merged into one experiment. Reads JSON, JSON-lines
and .npz only: no torch, so a report is quick to make.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from umbenet_cli.errors import UserError

# Mirrors umbenet_cli.evaluation.evaluate.FINAL_STAGES and model.config (kept here so reporting
# never loads torch; a test checks they agree).
FINAL_STAGES = ("stage2", "onestage", "stage1")
MODALITIES = ("video", "audio", "text")
ABBREV = {"video": "V", "audio": "A", "text": "T"}
MODALITY_BIT = {"video": 1, "audio": 2, "text": 4}
PAPER_ORDER = ("V", "A", "T", "V+T", "V+A", "V+A+T", "A+T")
TINY_BACKBONE = "umbenet/tiny-random-clip"
STRATEGY = {"both": "2-stage", "2": "2-stage", "one": "1-stage", "1": "stage 1 only"}
EVALUATED_STRATEGY = {"stage2": "2-stage", "onestage": "1-stage", "stage1": "stage 1 only"}
STAGES_OF = {"both": ("stage1", "stage2"), "2": ("stage2",), "one": ("onestage",), "1": ("stage1",)}
# run.json fields that may differ between runs merged into one experiment.
_PER_RUN_FIELDS = ("run_dir", "fold", "device", "save_every", "init_from")


class ReportError(UserError, ValueError):
    """Runs that cannot be reported on; the message names the run and the fix."""


def subset_name(mods) -> str:
    """("text", "video") -> "V+T" (always in video, audio, text order)."""
    return "+".join(ABBREV[m] for m in MODALITIES if m in mods)


def subset_of_code(code: int) -> str:
    """Row index of ``pool_counts`` (bit code video=1, audio=2, text=4) -> subset name."""
    return subset_name([m for m in MODALITIES if code & MODALITY_BIT[m]]) or "none"


@dataclass
class FoldEval:
    """The evaluation of one fold's final stage. results: results.json (subsets merged from
    ``--drop`` evaluations when there is no plain one); eval_dir: where its features.npz lies."""

    run_dir: Path
    split_dir: Path
    fold: int | None
    stage_dir: Path
    eval_dir: Path
    results: dict

    def subset(self, name: str) -> dict | None:
        return next((e for e in self.results["subsets"] if e["name"] == name), None)

    @property
    def full(self) -> dict:
        """The subset with the most modalities (what the run was trained on)."""
        return max(self.results["subsets"], key=lambda e: len(e["modalities"]))


@dataclass
class Experiment:
    """One configuration: one run, or several runs that differ only in their fold."""

    name: str
    runs: list[Path]
    options: dict  # run.json of the first run
    folds: list[FoldEval]
    trained: tuple[str, ...] = ()  # trained modalities the dataset has (set by ``collect``)
    notes: list[str] = field(default_factory=list)

    @property
    def dataset(self) -> str:
        return str(self.folds[0].results.get("dataset") or "unknown")

    @property
    def classes(self) -> list[str]:
        return list(self.folds[0].results["classes"])

    @property
    def has_neutral(self) -> bool:
        return self.folds[0].results.get("rule_without_neutral") is not None

    @property
    def excluded(self) -> tuple[str, ...]:
        """Classes the run was trained, validated and tested without (``--exclude-classes``)."""
        return tuple(self.folds[0].results.get("excluded_classes") or self.options.get("exclude_classes") or ())

    @property
    def pool(self) -> dict:
        return dict(self.options.get("model", {}).get("pool") or self.folds[0].results.get("pool") or {})

    @property
    def prompt_length(self) -> int | None:
        """Table 4's "Length", the overall prompt: pool.length + inherent_length (None when the
        run does not record both). Runs are matched to Table 4's rows by this, not pool.length."""
        inherent = (self.options.get("model") or {}).get("inherent_length")
        length = self.pool.get("length")
        return None if inherent is None or length is None else int(length) + int(inherent)

    @property
    def stage(self) -> str:
        return str(self.options.get("stage", "both"))

    @property
    def strategy(self) -> str:
        """What was evaluated (the stage each fold's results come from), not what run.json asked:
        a stage 2 interrupted before its first checkpoint leaves stage 1's results."""
        by_stage: dict[str, list[str]] = {}
        for fe in self.folds:
            by_stage.setdefault(fe.stage_dir.name, []).append("-" if fe.fold is None else str(fe.fold))
        if len(by_stage) == 1:
            return EVALUATED_STRATEGY.get(next(iter(by_stage)), STRATEGY.get(self.stage, self.stage))
        return "mixed: " + ", ".join(f"{EVALUATED_STRATEGY.get(s, s)} (fold {','.join(f)})" for s, f in by_stage.items())

    @property
    def backbone(self) -> str:
        return str(self.options.get("model", {}).get("backbone", "?"))

    @property
    def tiny(self) -> bool:
        return self.backbone == TINY_BACKBONE

    @property
    def trained_name(self) -> str:
        return subset_name(self.trained)

    def stage_dirs(self, fe: FoldEval) -> list[Path]:
        """The fold's stage folders in training order (stage1 before stage2)."""
        return [fe.split_dir / s for s in STAGES_OF.get(self.stage, FINAL_STAGES) if (fe.split_dir / s).is_dir()]


def read_json(path: Path, what: str, fix: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {what} {path} ({type(exc).__name__}: {exc}); {fix}") from None


def read_metrics(stage_dir: Path) -> list[dict]:
    """metrics.jsonl of a stage folder: one dict per epoch ([] if absent). A torn last line (a run
    killed while writing) is skipped."""
    path = stage_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _fold_number(split_dir: Path) -> int | None:
    return int(split_dir.name[4:]) if split_dir.name.startswith("fold") and split_dir.name[4:].isdigit() else None


def _load_eval(stage_dir: Path, split: str, run: Path) -> tuple[Path, dict] | None:
    """(eval folder with the largest subset, results) of one stage folder, or None if not evaluated."""
    fix = f"run `umbenet eval {run}` again"
    plain = stage_dir / "eval" / split / "results.json"
    if plain.is_file():
        return plain.parent, read_json(plain, "eval results", fix)
    drops = sorted((stage_dir / "eval").glob(f"{split}-drop-*/results.json")) if (stage_dir / "eval").is_dir() else []
    if not drops:
        return None
    loaded = [(p.parent, read_json(p, "eval results", fix)) for p in drops]
    eval_dir, merged = max(loaded, key=lambda x: max(len(e["modalities"]) for e in x[1]["subsets"]))
    merged = dict(merged)
    by_name = {e["name"]: e for _, r in loaded for e in r["subsets"]}
    merged["subsets"] = [by_name[n] for n in sorted(by_name, key=lambda n: (PAPER_ORDER + (n,)).index(n))]
    # What was dropped was there to drop: the run's full subset is the kept plus the dropped.
    merged["dropped"] = sorted({m for _, r in loaded for m in r.get("dropped", [])})
    return eval_dir, merged


def load_run(run: Path, split: str) -> tuple[dict, list[FoldEval]] | None:
    """(run.json, evaluated folds) of a run folder; None when no fold has eval results for ``split``.

    Raises ReportError for a folder that is not a run, or a run evaluated on some folds only."""
    if not (run / "run.json").is_file():
        hint = " (pass runs/<name>, not a fold or stage folder)" if (run.parent / "run.json").is_file() or \
            (run.parent.parent / "run.json").is_file() else ""
        raise ReportError(f"{run} is not a run folder (no run.json){hint}: pass folders written by `umbenet train`")
    options = read_json(run / "run.json", "run options", "it is written by `umbenet train`")
    evaluated, missing = [], []
    split_dirs = sorted((p for p in run.iterdir() if p.is_dir() and (p.name == "train-test" or _fold_number(p))),
                        key=lambda p: _fold_number(p) or 0)
    for split_dir in split_dirs:
        stage = next((split_dir / s for s in FINAL_STAGES
                      if (split_dir / s / "checkpoints").is_dir() or (split_dir / s / "eval").is_dir()), None)
        if stage is None:
            continue  # a fold whose training has not started
        got = _load_eval(stage, split, run)
        if got is None:
            missing.append(f"{split_dir.name}/{stage.name}")
            continue
        evaluated.append(FoldEval(run, split_dir, _fold_number(split_dir), stage, got[0], got[1]))
    if not evaluated:
        return None
    if missing:
        raise ReportError(f"{run} has no eval results for --split {split} in {', '.join(missing)}: "
                          f"run `umbenet eval {run}{'' if split == 'test' else ' --split ' + split}` first")
    return options, evaluated


def _no_eval(run: Path, split: str) -> ReportError:
    return ReportError(f"{run} has no eval results for --split {split} (no <fold>/<stage>/eval/{split}/results.json): "
                       f"run `umbenet eval {run}{'' if split == 'test' else ' --split ' + split}` first")


def _merge_key(options: dict) -> str:
    return json.dumps({k: v for k, v in options.items() if k not in _PER_RUN_FIELDS}, sort_keys=True)


def _experiment_name(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    prefix = os.path.commonprefix(names).rstrip("-_.")
    return f"{prefix or names[0]} ({len(names)} runs)"


def group_runs(loaded: list[tuple[Path, dict, list[FoldEval]]]) -> list[Experiment]:
    """Merge runs that differ only in their folds (disjoint fold numbers) into experiments."""
    groups: dict[str, list[tuple[Path, dict, list[FoldEval]]]] = {}
    for item in loaded:
        groups.setdefault(_merge_key(item[1]), []).append(item)
    experiments = []
    for items in groups.values():
        folds = [fe.fold for _, _, fes in items for fe in fes]
        if len(items) > 1 and (None in folds or len(set(folds)) != len(folds)):
            batches = [[it] for it in items]  # overlapping folds: repeats, kept apart
        else:
            batches = [items]
        for batch in batches:
            fes = sorted((fe for _, _, f in batch for fe in f), key=lambda fe: fe.fold or 0)
            experiments.append(Experiment(_experiment_name([p.name for p, _, _ in batch]),
                                          [p for p, _, _ in batch], batch[0][1], fes))
    seen: dict[str, int] = {}
    for exp in experiments:  # same name from two runs folders: keep names distinct
        seen[exp.name] = seen.get(exp.name, 0) + 1
        if seen[exp.name] > 1:
            exp.name = f"{exp.name}-{seen[exp.name]}"
    return experiments


def collect_runs(runs: list[str | Path], split: str = "test", runs_dir: str | Path = "runs"
            ) -> tuple[list[Experiment], list[Path]]:
    """Experiments to report on, and the runs skipped for want of eval results.

    ``runs`` empty: every run under ``runs_dir`` that has eval results (the others are skipped);
    otherwise each named run must have them."""
    if split not in ("test", "val"):
        raise ReportError(f"--split {split!r}: choose test or val (the split `umbenet eval --split` used)")
    skipped: list[Path] = []
    loaded: list[tuple[Path, dict, list[FoldEval]]] = []
    if runs:
        paths = [Path(r) for r in runs]
        for p in paths:
            if not p.is_dir():
                raise ReportError(f"{p}: no such run folder; pass folders written by `umbenet train` (runs/<name>)")
        for p in dict.fromkeys(paths):
            got = load_run(p, split)
            if got is None:
                raise _no_eval(p, split)
            loaded.append((p, *got))
    else:
        root = Path(runs_dir)
        candidates = sorted(p.parent for p in root.glob("*/run.json")) if root.is_dir() else []
        for p in candidates:
            got = load_run(p, split)
            if got is None:
                skipped.append(p)
            else:
                loaded.append((p, *got))
        if not loaded:
            if candidates:
                raise ReportError(f"none of the {len(candidates)} runs under {root}/ has eval results for --split {split}: "
                                  f"run `umbenet eval {candidates[0]}` (and the others) first")
            raise ReportError(f"no runs found under {root}/: pass RUN folders (`umbenet report runs/<name>`), "
                              f"or train (`umbenet train`) and evaluate (`umbenet eval`) first")
    experiments = group_runs(loaded)
    _set_trained(experiments)
    return experiments, skipped


def _set_trained(experiments: list[Experiment]) -> None:
    """Trained modalities as far as the dataset has them (a DFEW run 'trained on' text has none)."""
    have: dict[str, set[str]] = {}
    for exp in experiments:
        for fe in exp.folds:
            seen = have.setdefault(exp.dataset, set())
            for e in fe.results["subsets"]:
                seen.update(e["modalities"])
            seen.update(m for m in fe.results.get("dropped", []) if m in (fe.results.get("trained_modalities") or ()))
    for exp in experiments:
        asked = exp.folds[0].results.get("trained_modalities") or exp.options.get("modalities") or MODALITIES
        exp.trained = tuple(m for m in MODALITIES if m in asked and m in have.get(exp.dataset, ()))
