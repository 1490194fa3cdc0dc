"""``umbenet eval RUN...``: evaluate every fold of each run, print the tables, save a summary."""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from umbenet_cli.evaluation.evaluate import SUMMARY_UNITS, EvalError, evaluate_stage, find_stages, fold_summary
from umbenet_cli.evaluation.metrics import RULE_LABELS, RULES, UAR_RULE, WITHOUT_NEUTRAL_RULES, pct


def _neutral_headers() -> list[tuple[str, str]]:
    """(column title, summary key) of the without-neutral scores, each named by its rule."""
    return [(f"{k.upper()} w/o neutral ({RULE_LABELS[r]})", f"{k}_without_neutral_{r}")
            for r in RULES for k in ("uar", "war")]


def subset_table(results: dict) -> Table:
    ten = results["rule_without_neutral"] is not None
    failed = results.get("n_failed_left_out") or 0
    excluded = results.get("excluded_classes") or []
    table = Table(title=f"{Path(results['run']).name} fold {results['fold'] or '-'} {results['stage']} "
                        f"({results['split']}, {results['n_clips']} clips, {len(results['classes'])} classes"
                        + (f", {','.join(excluded)} excluded" if excluded else "")
                        + (f"; {failed} failed clips left out" if failed else "") + ")")
    cols = ["subset", "clips", "left out", "UAR", "WAR", "UAR classes"]
    if ten:
        cols += [title for title, _ in _neutral_headers()]
    for col in cols:
        table.add_column(col, justify="left" if col == "subset" else "right")
    for e in results["subsets"]:
        cells = [e["name"], str(e["n"]), str(e["n_without_input"]), pct(e["uar"]), pct(e["war"]),
                 str(e.get("uar_classes", "?"))]
        if ten:
            cells += [pct((e.get(f"without_neutral_{r}") or {}).get(k)) for r in RULES for k in ("uar", "war")]
        table.add_row(*cells)
    return table


def summary_table(name: str, summary: list[dict], ten: bool, stages: list[str] | None = None) -> Table:
    evaluated = "/".join(dict.fromkeys(stages)) if stages else ""
    table = Table(title=f"{name}{' ' + evaluated if evaluated else ''}: mean ± std over {summary[0]['folds']} fold(s)")
    cols = [("UAR", "uar"), ("WAR", "war"), *(_neutral_headers() if ten else [])]
    table.add_column("subset")
    for title, _ in cols:
        table.add_column(title, justify="right")
    for row in summary:
        table.add_row(row["name"], *(pct(row[k]["mean"], row[k]["std"]) if row[k] else "n/a" for _, k in cols))
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
                  cache: str | None = None, device: str = "cpu", console: Console | None = None) -> list[dict]:
    """Evaluate each run (all its folds); returns the per-run summaries."""
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
            console.print(subset_table(r))
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
            console.print(summary_table(Path(run).name, summary["subsets"], results[0]["rule_without_neutral"] is not None,
                                        summary["stages"]))
        if any(r["stage_note"] for r in results):
            warn.print(f"[bold yellow]warning:[/] {Path(run).name}: evaluated stages per fold "
                       f"{dict(zip(summary['folds'], summary['stages']))}, not the run's final stage everywhere",
                       highlight=False)
        summaries.append(summary)
    return summaries
