"""``umbenet report``: evaluated runs -> one report (report.md, self-contained report.html, figures/).

Sections: the runs; results laid out like the paper's Tables 1-4 (mean ± std over folds); the
published numbers beside ours; confusion matrices; training curves; prompt-pool usage and keys
(Fig. 8); features before and after the model (Fig. 6); every fold's scores.
"""
from __future__ import annotations

import datetime
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

from umbenet_cli.reporting import figures as F
from umbenet_cli.reporting import pool_figures as P
from umbenet_cli.reporting import tables as T
from umbenet_cli.reporting.collect import TINY_BACKBONE, Experiment, collect_runs
from umbenet_cli.reporting.published import DATASETS, NOTES
from umbenet_cli.reporting.render import Block, Heading, Image, Note, Para, Table, to_html, to_markdown

log = logging.getLogger(__name__)

FIGURES = (  # (section, file prefix, function, caption, what is missing when it draws nothing)
    ("Confusion matrices", "confusion", F.confusion_figure,
     "row-normalised confusion matrix (row %) of the full subset (rows: true class), summed over folds, of the "
     "checkpoint evaluated (named in the title)", "no confusion matrix"),
    ("Training curves", "curves", F.curves_figure,
     "training loss and validation UAR per epoch, per stage and fold (metrics.jsonl)", "no metrics.jsonl"),
    ("Prompt pool: usage", "pool_usage", P.usage_figure,
     "prompt selections per presented subset and prompt by each stage's best checkpoint (the one evaluated and "
     "drawn in the keys figure), counted over the training clips after the stage, each modality alone and all "
     "together (selection.json; older runs: the training counts, as labelled); stage 1: red = carried to stage 2; "
     "stage 2: 'a<-b' = slot a holds stage 1's prompt b",
     "no prompt pool (pool.enabled=false) or no metrics"),
    ("Prompt pool: keys (Fig. 8)", "pool_keys", P.keys_figure,
     "pool keys of each stage's best checkpoint projected on 2 principal components; colour = subset selecting "
     "the prompt most (the usage figure's counts), hollow = unused, ring = carried from stage 1 (labelled "
     "'slot<-stage-1 prompt')",
     "no pool keys in the checkpoints"),
    ("Features before and after the model (Fig. 6)", "features", F.features_figure,
     "PCA of the mean input frame embedding and of the fused feature, coloured by class", "no features.npz"),
)


@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    experiments: tuple[Experiment, ...]
    skipped: tuple[Path, ...]


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


def _runs_table(experiments: list[Experiment], split: str) -> Table:
    rows = []
    for exp in experiments:
        folds = ", ".join("train-test" if fe.fold is None else str(fe.fold) for fe in exp.folds)
        rows.append([exp.name, ", ".join(str(r) for r in exp.runs), exp.dataset, exp.backbone, str(len(exp.classes)),
                     exp.trained_name, exp.strategy, "/".join(T.pool_cells(exp)), folds,
                     ", ".join(sorted({fe.stage_dir.name for fe in exp.folds}))])
    return Table(["Experiment", "Run folders", "Dataset", "Backbone", "Classes", "Modalities", "Strategy",
                  "Pool L/N/K", "Folds", "Evaluated stage"], rows, f"Evaluated on the '{split}' split of each fold.")


def _head(experiments: list[Experiment], split: str, title: str) -> list[Block]:
    n_runs = sum(len(e.runs) for e in experiments)
    blocks: list[Block] = [Heading(title, 1), Para(
        f"{n_runs} run(s) as {len(experiments)} experiment(s), '{split}' split, written "
        f"{datetime.date.today().isoformat()} by umbenet report.")]
    tiny = [e.name for e in experiments if e.tiny]
    if tiny:
        blocks.append(Note(f"{'All runs' if len(tiny) == len(experiments) else 'Runs ' + ', '.join(tiny)} use the "
                           f"offline random tiny backbone ({TINY_BACKBONE}): their numbers check the pipeline, "
                           f"not the method."))
    merged = [e for e in experiments if len(e.runs) > 1]
    for e in merged:
        blocks.append(Note(f"{e.name}: runs {', '.join(r.name for r in e.runs)} have the same options except the "
                           f"fold, so their folds are reported together."))
    return blocks + [Heading("Runs", 2), _runs_table(experiments, split)]


def _figures(experiments: list[Experiment], fig_dir: Path) -> tuple[list[Block], list[Path]]:
    blocks: list[Block] = []
    written: list[Path] = []
    for section, prefix, draw, caption, missing in FIGURES:
        blocks.append(Heading(section, 2))
        for exp in experiments:
            path = draw(exp, fig_dir / f"{prefix}_{slug(exp.name)}.png")
            if path is None:
                blocks.append(Para(f"{exp.name}: nothing to draw ({missing})."))
                continue
            written.append(path)
            blocks.append(Image(path, f"{exp.name}: {caption}", alt=f"{prefix} {exp.name}"))
    return blocks, written


def build_report(runs: list[str | Path] | None = None, out: str | Path | None = None, split: str = "test",
                 title: str | None = None, runs_dir: str | Path = "runs", console: Console | None = None
                 ) -> ReportResult:
    """Gather evaluated runs (default: every one under ``runs_dir``) into ``out`` (default
    reports/<experiment name>, or reports/report for several): report.md, report.html (images
    embedded) and figures/*.png. Raises ReportError for runs without eval results."""
    console = console or Console()
    experiments, skipped = collect_runs(list(runs or []), split, runs_dir)
    out_dir = Path(out) if out else Path("reports") / (slug(experiments[0].name) if len(experiments) == 1 else "report")
    fig_dir = out_dir / "figures"
    if (out_dir / "report.md").is_file() and fig_dir.is_dir():
        for old in fig_dir.glob("*.png"):  # a previous report's figures
            old.unlink()
    title = title or "UMBEnet report"
    blocks = _head(experiments, split, title)
    blocks += [Heading("Results", 2), Heading("Tables 1-2 style: one line per run", 3), *T.overall(experiments),
               *T.table3(experiments), *T.table4(experiments)]
    blocks += [Heading("Published numbers beside ours", 2), *T.comparison(experiments),
               *(Para("Note: " + n) for n in NOTES if any(e.dataset in DATASETS for e in experiments))]
    fig_blocks, written = _figures(experiments, fig_dir)
    blocks += fig_blocks
    rule = experiments[0].folds[0].results.get("rule_without_input")
    blocks += [Heading("Per-fold scores", 2), T.per_fold(experiments)] + ([Para(f"Left out: {rule}.")] if rule else [])
    out_dir.mkdir(parents=True, exist_ok=True)
    md, html = out_dir / "report.md", out_dir / "report.html"
    _write(md, to_markdown(blocks, out_dir))
    _write(html, to_html(blocks, title))
    _summary(console, experiments, skipped, out_dir, len(written))
    return ReportResult(out_dir, md, html, tuple(written), tuple(experiments), tuple(skipped))


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _summary(console: Console, experiments: list[Experiment], skipped: list[Path], out_dir: Path, n_fig: int) -> None:
    table = RichTable(title="gathered for the report")
    # subset: the modalities trained on, as eval names it; scores in % (mean ± std over the folds)
    for col in ("experiment", "dataset", "subset", "strategy", "folds", "UAR %", "WAR %"):
        table.add_column(col, justify="left" if col in ("experiment", "dataset", "subset", "strategy") else "right",
                         overflow="fold")
    for exp in experiments:
        sc = T.fold_scores(exp, exp.trained_name)
        table.add_row(exp.name, exp.dataset, exp.trained_name, exp.strategy, str(len(exp.folds)),
                      T.ms(sc["uar"]), T.ms(sc["war"]))
    console.print(table)
    if any(e.tiny for e in experiments):
        console.print(f"[yellow]note:[/] runs on the random tiny backbone ({TINY_BACKBONE}) check the pipeline, "
                      f"not the method", highlight=False)
    for p in skipped:
        console.print(f"[dim]skipped {p}: no eval results (run `umbenet eval {p}`)[/]", highlight=False)
    console.print(f"report written: {out_dir / 'report.md'}, {out_dir / 'report.html'} "
                  f"({n_fig} figures in {out_dir / 'figures'})", highlight=False)
