"""Helpers for the report tests: read Markdown tables back, recompute mean ± std, hand-made runs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

MAFW = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
        "contempt", "anxiety", "helplessness", "disappointment")
ORDER = ("video", "audio", "text")
ABBREV = {"video": "V", "audio": "A", "text": "T"}


def md_tables(md: str) -> list[list[list[str]]]:
    """Every Markdown table as rows of cells (header first, the --- line dropped)."""
    tables, current = [], None
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if current is None:
                current = []
                tables.append(current)
            if not all(set(c) <= {"-"} for c in cells):
                current.append(cells)
        else:
            current = None
    return tables


def table_after(md: str, heading: str, index: int = 0) -> list[dict[str, str]]:
    """The ``index``-th table after the heading that starts with ``heading``, as dicts by column."""
    start = next(i for i, line in enumerate(md.splitlines()) if line.lstrip("#").strip().startswith(heading))
    rest = "\n".join(md.splitlines()[start + 1:])
    t = md_tables(rest)[index]
    return [dict(zip(t[0], row)) for row in t[1:]]


def fmt(values: list[float]) -> str:
    """What the report must show for per-fold fractions: mean ± sample std in %, or one value."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 1:
        return f"{100 * a[0]:.2f}"
    return f"{100 * a.mean():.2f} ± {100 * a.std(ddof=1):.2f}"


def fold_results(run: Path) -> dict[int, dict]:
    """results.json of each fold's final stage, by fold number."""
    out = {}
    for f in sorted(run.glob("fold*/*/eval/test/results.json")):
        out[int(f.parts[-5][4:])] = json.loads(f.read_text())
    return out


def values(results: list[dict], subset: str, key: str) -> list[float]:
    got = []
    for r in results:
        e = next(e for e in r["subsets"] if e["name"] == subset)
        got.append(e[key] if key in ("uar", "war") else e["without_neutral_authors"][key[:3]])
    return got


def subset_entry(mods: tuple[str, ...], uar: float, war: float, uar10: float, war10: float, n_classes: int,
                 strict: tuple[float, float] | None = None) -> dict:
    """uar10/war10: without neutral by the authors' rule; strict: by the strict rule (default: 0.01 less)."""
    cm = np.eye(n_classes, dtype=int).tolist()
    su, sw = strict or (uar10 - 0.01, war10 - 0.01)
    return {"name": "+".join(ABBREV[m] for m in ORDER if m in mods), "modalities": list(mods), "n": n_classes,
            "n_without_input": 0, "uar": uar, "war": war, "per_class_recall": [1.0] * n_classes,
            "confusion": cm, "without_neutral_authors": {"uar": uar10, "war": war10, "per_class_recall": None},
            "without_neutral_strict": {"uar": su, "war": sw, "per_class_recall": None},
            "prompt_usage": None}


def handmade_run(runs: Path, name: str, scores: dict[tuple[str, ...], tuple[float, float, float, float]], *,
                 dataset: str = "mafw", classes: tuple[str, ...] = MAFW, trained: tuple[str, ...] = ORDER,
                 stage: str = "both", pool: dict | None = None, backbone: str = "ViT-B-32", folds=(1,),
                 evaluated: bool = True, excluded: tuple[str, ...] = (), inherent_length: int = 32) -> Path:
    """A run folder as `umbenet train` + `umbenet eval` lay it out, with chosen scores (fractions)
    per subset; no checkpoint, metrics or features (the report must cope)."""
    pool = pool or {"size": 32, "length": 32, "top_k": 5, "query": "cosine", "balance": True,
                    "key_loss_weight": 0.5, "enabled": True}
    run = runs / name
    run.mkdir(parents=True)
    opts = {"cache": f"cache/{dataset}", "run_dir": str(run), "stage": stage, "fold": "all",
            "modalities": list(trained), "val_fraction": 0.1, "seed": 0, "init_from": None, "device": "cpu",
            "save_every": 0, "max_steps": None, "extra": {}, "exclude_classes": list(excluded),
            "model": {"backbone": backbone, "classes": list(classes), "pool": pool,
                      "inherent_length": inherent_length}}
    (run / "run.json").write_text(json.dumps(opts))
    final = {"both": "stage2", "one": "onestage", "1": "stage1", "2": "stage2"}[stage]
    for k in folds:
        stage_dir = run / f"fold{k}" / final
        (stage_dir / "checkpoints").mkdir(parents=True)
        if not evaluated:
            continue
        results = {"run": str(run), "fold": k, "stage": final, "split": "test", "dataset": dataset,
                   "classes": list(classes), "excluded_classes": list(excluded), "n_clips": len(classes), "dropped": [],
                   "trained_modalities": list(trained), "pool": pool,
                   "rule_without_input": "clips with none of a subset's modalities are left out of that subset",
                   "rule_without_neutral": "authors' rule ..." if "neutral" in classes else None,
                   "subsets": [subset_entry(m, *s, len(classes)) for m, s in scores.items()]}
        (stage_dir / "eval" / "test").mkdir(parents=True)
        (stage_dir / "eval" / "test" / "results.json").write_text(json.dumps(results))
    return run
