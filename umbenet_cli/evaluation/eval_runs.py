"""``umbenet eval RUN...``: evaluate every fold of each run, print the tables, save a summary."""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from umbenet_cli.evaluation.evaluate import SUMMARY_UNITS, EvalError, evaluate_stage, find_stages, fold_summary
from umbenet_cli.evaluation.metrics import RULE_LABELS, RULES, UAR_RULE, WITHOUT_NEUTRAL_RULES, pct


# What a reader needs first fits 80 columns: the subset, its clips, UAR and WAR, and for MAFW with
# its 11 classes the pair without neutral under the authors' rule (behind the paper's 10-class
# rows). The rest (clips left out, classes averaged, the other without-neutral scores) is --wide:
# a second table, so each fits. Cells are percent without a "%": the header says it once.
PAPER_WITHOUT_NEUTRAL = frozenset({"mafw"})  # datasets whose papers report a score without neutral


def main_rules(results: dict) -> tuple[str, ...]:
    """The without-neutral rules in the default table: the authors' for MAFW with neutral, else none."""
    has = results["rule_without_neutral"] is not None
    return ("authors",) if has and results.get("dataset") in PAPER_WITHOUT_NEUTRAL else ()


def more_rules(results: dict) -> tuple[str, ...]:
    """The without-neutral rules in the --wide table: those the default table leaves out."""
    has = results["rule_without_neutral"] is not None
    return tuple(r for r in RULES if r not in main_rules(results)) if has else ()


def _neutral_columns(rules: tuple[str, ...], tagged: bool) -> list[tuple[str, str]]:
    """(column title, summary key) of UAR and WAR without neutral under each of ``rules``."""
    return [(f"{k.upper()} % w/o neutral" + (f" ({RULE_LABELS[r]})" if tagged else ""), f"{k}_without_neutral_{r}")
            for r in rules for k in ("uar", "war")]


def _without_neutral(entry: dict, key: str) -> float | None:
    """``uar_without_neutral_strict`` -> entry["without_neutral_strict"]["uar"] (None if absent)."""
    metric, _, rule = key.partition("_without_neutral_")
    return (entry.get(f"without_neutral_{rule}") or {}).get(metric)


def _new_table(title: str, columns: list[str], caption: str | None = None) -> Table:
    """Every column folds what does not fit (never an ellipsis); the first is left-aligned."""
    table = Table(title=title, caption=caption or None)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right", overflow="fold")
    return table


def _number(value: float | None, std: float | None = None) -> str:
    return pct(value, std, unit="")


def _mean_std(row: dict, key: str) -> str:
    return _number(row[key]["mean"], row[key]["std"]) if row[key] else "n/a"


def _caption(results: dict, wide: bool) -> str:
    """Under a default table: the rule of its w/o-neutral columns, and where the other columns are."""
    parts = [f"w/o neutral: {RULE_LABELS['authors']}, the {len(results['classes']) - 1}-class score the paper "
             f"reports"] if main_rules(results) else []
    return "; ".join(parts + ([] if wide else ["more columns: --wide"]))


def _title(results: dict) -> str:
    failed = results.get("n_failed_left_out") or 0
    excluded = results.get("excluded_classes") or []
    return (f"{Path(results['run']).name} fold {results['fold'] or '-'} {results['stage']} "
            f"({results['split']}, {results['n_clips']} clips, {len(results['classes'])} classes"
            + (f", {','.join(excluded)} excluded" if excluded else "")
            + (f"; {failed} failed clips left out" if failed else "") + ")")


def subset_table(results: dict, wide: bool = False) -> Table:
    """One fold's scores per modality subset: subset, clips scored, UAR, WAR (and for MAFW with
    neutral, both without neutral under the authors' rule)."""
    neutral = _neutral_columns(main_rules(results), tagged=False)
    table = _new_table(_title(results), ["subset", "clips", "UAR %", "WAR %", *(t for t, _ in neutral)],
                       _caption(results, wide))
    for e in results["subsets"]:
        table.add_row(e["name"], str(e["n"]), _number(e["uar"]), _number(e["war"]),
                      *(_number(_without_neutral(e, k)) for _, k in neutral))
    return table


def subset_more_table(results: dict) -> Table:
    """``--wide``: the other columns of ``subset_table``: clips left out for lacking the subset's
    modalities, the classes UAR averaged, and the other scores without neutral."""
    neutral = _neutral_columns(more_rules(results), tagged=True)
    table = _new_table(f"{_title(results)}: more columns",
                       ["subset", "left out (no input)", "UAR classes", *(t for t, _ in neutral)])
    for e in results["subsets"]:
        table.add_row(e["name"], str(e["n_without_input"]), str(e.get("uar_classes", "?")),
                      *(_number(_without_neutral(e, k)) for _, k in neutral))
    return table


def summary_table(name: str, summary: list[dict], first: dict, stages: list[str] | None = None,
                  wide: bool = False) -> Table:
    """Mean ± std over folds per subset, the columns of ``subset_table`` (``first``: the first
    fold's results, which say the classes and dataset)."""
    evaluated = "/".join(dict.fromkeys(stages)) if stages else ""
    cols = [("UAR %", "uar"), ("WAR %", "war"), *_neutral_columns(main_rules(first), tagged=False)]
    table = _new_table(f"{name}{' ' + evaluated if evaluated else ''}: mean ± std over {summary[0]['folds']} fold(s)",
                       ["subset", *(t for t, _ in cols)], _caption(first, wide))
    for row in summary:
        table.add_row(row["name"], *(_mean_std(row, k) for _, k in cols))
    return table


def summary_more_table(name: str, summary: list[dict], first: dict) -> Table:
    """``--wide``: the clips scored in each fold, and the other scores without neutral."""
    cols = _neutral_columns(more_rules(first), tagged=True)
    table = _new_table(f"{name}: more columns, over {summary[0]['folds']} fold(s)",
                       ["subset", "clips per fold", *(t for t, _ in cols)])
    for row in summary:
        table.add_row(row["name"], " / ".join(map(str, row["n"])), *(_mean_std(row, k) for _, k in cols))
    return table


def rules_text(results: dict) -> list[str]:
    """The rules behind the numbers, one line each, as printed under the tables."""
    rules = results.get("rules") or {}
    lines = [f"UAR/WAR: {rules.get('uar', UAR_RULE)}"]
    if results["rule_without_neutral"] is not None:
        lines += [f"w/o neutral, {WITHOUT_NEUTRAL_RULES[r]}" for r in RULES]
    if results.get("excluded_classes"):
        lines.append(f"this run was trained, validated and tested without {results['excluded_classes']} "
                     f"(a true {len(results['classes'])}-class protocol)")
    lines.append(rules.get("without_input", results["rule_without_input"]))
    if rules.get("batch_query"):
        lines.append(rules["batch_query"])
    return lines


def runs_with_checkpoints(runs_dir: str | Path, checkpoint: str = "best") -> list[Path]:
    """The runs under ``runs_dir`` (folders with run.json, as ``report`` finds them) that have a
    complete ``checkpoint`` in some fold; an EvalError naming the folder and the fix when none has."""
    root = Path(runs_dir)
    runs = sorted(p.parent for p in root.glob("*/run.json")) if root.is_dir() else []
    ready = [r for r in runs if any(r.glob(f"*/*/checkpoints/{checkpoint}/COMPLETE"))]
    if not ready:
        found = f"{len(runs)} run(s) there, none with a complete '{checkpoint}' checkpoint yet" if runs else "no run there"
        raise EvalError(f"which run? {found} ({root.resolve()}): train one with `umbenet train`, or pass RUN "
                        f"folders (`umbenet eval runs/<name>`) or --runs-dir DIR")
    return ready


def evaluate_runs(runs: list[str], split: str = "test", drop: tuple[str, ...] = (), checkpoint: str = "best",
                  cache: str | None = None, device: str = "cpu", console: Console | None = None,
                  wide: bool = False) -> list[dict]:
    """Evaluate each run (all its folds); returns the per-run summaries. ``wide``: also print the
    tables of the other columns (``subset_more_table``, ``summary_more_table``)."""
    from umbenet_cli.evaluation.confusion import confusion_table
    from umbenet_cli.training.tracking import log_eval
    import numpy as np

    console = console or Console()
    warn = Console(stderr=True)  # warnings beside the error messages, not in the tables
    refs_per_run = [(run, find_stages(run, checkpoint)) for run in runs]  # every path checked before any work
    summaries = []
    for run, refs in refs_per_run:
        results = []
        for ref in refs:
            if ref.note:
                warn.print(f"[bold yellow]warning:[/] {ref.note}", highlight=False)
            r = evaluate_stage(ref, split, drop, checkpoint, Path(cache) if cache else None, device)
            results.append(r)
            log_eval(r, ref.stage_dir, Path(r["out_dir"]))  # into the stage's TensorBoard / W&B log
            console.print(subset_table(r, wide))
            if wide:
                console.print(subset_more_table(r))
            main = max(r["subsets"], key=lambda e: len(e["modalities"]))
            console.print(confusion_table(np.array(main["confusion"]), r["classes"], normalise=True,
                                          title=f"confusion ({main['name']}, {checkpoint} checkpoint, row %)",
                                          left_out=main.get("n_without_input_per_class")))
            console.print(f"written: {r['out_dir']}", highlight=False)
        for line in rules_text(results[0]):
            console.print(f"[dim]{line}[/]", highlight=False)
        summary = {"run": str(run), "split": split, "dropped": list(drop), "classes": results[0]["classes"],
                   "excluded_classes": results[0]["excluded_classes"], "rules": results[0]["rules"],
                   "folds": [r["fold"] for r in results], "stages": [r["stage"] for r in results],
                   "stage_notes": [r["stage_note"] for r in results if r["stage_note"]],
                   "units": SUMMARY_UNITS, "checkpoint": checkpoint, "subsets": fold_summary(results)}
        tag = split + ("-drop-" + "-".join(drop) if drop else "")
        Path(run, f"eval-{tag}.json").write_text(json.dumps(summary, indent=2))
        if len(results) > 1:
            console.print(summary_table(Path(run).name, summary["subsets"], results[0], summary["stages"], wide))
            if wide:
                console.print(summary_more_table(Path(run).name, summary["subsets"], results[0]))
        if any(r["stage_note"] for r in results):
            warn.print(f"[bold yellow]warning:[/] {Path(run).name}: evaluated stages per fold "
                       f"{dict(zip(summary['folds'], summary['stages']))}, not the run's final stage everywhere",
                       highlight=False)
        summaries.append(summary)
    return summaries
