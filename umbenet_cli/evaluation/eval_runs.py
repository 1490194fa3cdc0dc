"""``umbenet eval RUN...``: evaluate every fold of each run, print the tables, save a summary."""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from umbenet_cli.evaluation.evaluate import evaluate_stage, find_stages, fold_summary
from umbenet_cli.evaluation.metrics import pct


def subset_table(results: dict) -> Table:
    ten = results["rule_without_neutral"] is not None
    table = Table(title=f"{Path(results['run']).name} fold {results['fold'] or '-'} {results['stage']} "
                        f"({results['split']}, {results['n_clips']} clips)")
    for col in ("subset", "clips", "left out", "UAR", "WAR", *(("UAR w/o neutral", "WAR w/o neutral") if ten else ())):
        table.add_column(col, justify="left" if col == "subset" else "right")
    for e in results["subsets"]:
        cells = [e["name"], str(e["n"]), str(e["n_without_input"]), pct(e["uar"]), pct(e["war"])]
        if ten:
            cells += [pct(e["without_neutral"]["uar"]), pct(e["without_neutral"]["war"])]
        table.add_row(*cells)
    return table


def summary_table(name: str, summary: list[dict]) -> Table:
    table = Table(title=f"{name}: mean ± std over {summary[0]['folds']} fold(s)")
    for col in ("subset", "UAR", "WAR", "UAR w/o neutral", "WAR w/o neutral"):
        table.add_column(col, justify="left" if col == "subset" else "right")
    for row in summary:
        table.add_row(row["name"], *(pct(*row[k]) if row[k] else "n/a"
                                     for k in ("uar", "war", "uar_without_neutral", "war_without_neutral")))
    return table


def evaluate_runs(runs: list[str], split: str = "test", drop: tuple[str, ...] = (), checkpoint: str = "best",
                  cache: str | None = None, device: str = "cpu", console: Console | None = None) -> list[dict]:
    """Evaluate each run (all its folds); returns the per-run summaries."""
    from umbenet_cli.evaluation.confusion import confusion_table
    import numpy as np

    console = console or Console()
    refs_per_run = [(run, find_stages(run)) for run in runs]  # every path checked before any work
    summaries = []
    for run, refs in refs_per_run:
        results = []
        for ref in refs:
            r = evaluate_stage(ref, split, drop, checkpoint, Path(cache) if cache else None, device)
            results.append(r)
            console.print(subset_table(r))
            main = max(r["subsets"], key=lambda e: len(e["modalities"]))
            console.print(confusion_table(np.array(main["confusion"]), r["classes"], normalise=True,
                                          title=f"confusion ({main['name']}, row %)"))
            console.print(f"written: {r['out_dir']}", highlight=False)
        if results[0]["rule_without_neutral"]:
            console.print(f"[dim]without neutral (MAFW's 10-class score): {results[0]['rule_without_neutral']}[/]")
        console.print(f"[dim]{results[0]['rule_without_input']}[/]")
        summary = {"run": str(run), "split": split, "dropped": list(drop),
                   "folds": [r["fold"] for r in results], "subsets": fold_summary(results)}
        tag = split + ("-drop-" + "-".join(drop) if drop else "")
        Path(run, f"eval-{tag}.json").write_text(json.dumps(summary, indent=2))
        if len(results) > 1:
            console.print(summary_table(Path(run).name, summary["subsets"]))
        summaries.append(summary)
    return summaries
