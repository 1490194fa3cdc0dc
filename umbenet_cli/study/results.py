"""``umbenet report runs/STUDY``: the plan's tables in the paper's layout (Table 3, Table 4, 11 and
10 classes), ours as mean ± sd over folds beside the published numbers, cells with folds still
missing marked ``[k/n folds]``; the ablation's arms; a TOML plan's runs.

Reads the run folders as ``umbenet report`` does (``reporting.collect.load_run``) and formats with
``reporting.tables`` (``fold_scores``, ``ms``) and ``reporting.render``: no torch.
"""
from __future__ import annotations

import datetime
import os
from pathlib import Path

from rich.console import Console

from umbenet_cli.reporting.collect import MODALITIES, Experiment, ReportError, load_run
from umbenet_cli.reporting.published import TABLE4, published_for, table4_for
from umbenet_cli.reporting.render import Block, Heading, Note, Para, Table, to_html, to_markdown
from umbenet_cli.reporting.tables import fold_scores, mean_pct, ms
from umbenet_cli.study import state as S
from umbenet_cli.study.matrix import TEN_TAG

PAPER_SUBSETS = ("V", "A", "T", "V+T", "V+A", "V+A+T")
UAR_NOTE = ("Ours: mean ± sample sd over the folds evaluated (test split, %); [k/n folds]: only k of the n planned "
            "folds are evaluated yet. Paper: the UMBEnet paper's number (MAFW); Δ = ours − paper.")


def is_study(path: str | Path) -> bool:
    return (Path(path) / "study.json").is_file()


def experiments(study_dir: Path, data: dict, split: str) -> dict[tuple[str, int], tuple[Experiment | None, int]]:
    """(run name, classes) -> (its evaluated folds as one Experiment or None, folds planned)."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for rec in data["runs"].values():
        groups.setdefault((rec["run"], rec["classes"]), []).append(rec)
    out = {}
    for (run, classes), recs in groups.items():
        runs, folds, options = [], [], None
        for rec in sorted(recs, key=lambda r: r["fold"] or 0):
            run_dir = Path(rec["run_dir"])
            if rec["state"] != "done" or not (run_dir / "run.json").is_file():
                continue
            try:
                got = load_run(run_dir, split)
            except ReportError:
                got = None
            if got is None:
                continue
            options = options or got[0]
            runs.append(run_dir)
            folds += got[1]
        exp = None
        if folds:
            exp = Experiment(run + (TEN_TAG if classes == 10 else ""), runs, options, folds)
            asked = folds[0].results.get("trained_modalities") or options.get("modalities") or MODALITIES
            exp.trained = tuple(m for m in MODALITIES if m in asked)
        out[(run, classes)] = (exp, len(recs))
    return out


def _ours(found: tuple[Experiment | None, int] | None, subset: str, key: str) -> tuple[str, float | None]:
    if found is None:
        return "—", None
    exp, planned = found
    if exp is None:
        return f"not yet [0/{planned} folds]", None
    values = fold_scores(exp, subset)[key]
    cell = ms(values)
    if len(values) < planned:
        cell += f" [{len(values)}/{planned} folds]"
    return cell, mean_pct(values)


def _paper(value: float | None, ours: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" + (f" (Δ {ours - value:+.2f})" if ours is not None else "")


def _score_columns(classes: list[int]) -> list[str]:
    return [h for c in classes for h in (f"UAR {c} cl.", f"paper UAR {c}", f"WAR {c} cl.", f"paper WAR {c}")]


def _cells(found_by_class: dict, subset: str, paper_by_class: dict) -> list[str]:
    cells = []
    for c, found in found_by_class.items():
        pub = paper_by_class.get(c)
        for key, attr in (("uar", "uar"), ("war", "war")):
            cell, mean = _ours(found, subset, key)
            cells += [cell, _paper(getattr(pub, attr) if pub else None, mean)]
    return cells


def _role_runs(data: dict, table: str) -> list[tuple[str, dict]]:
    return [(r["name"], role) for r in data["plan"]["runs"] for role in r.get("roles") or [] if role["table"] == table]


def _umbenet(subset: str, classes: int, block: str, dataset: str):
    found = [p for p in published_for(dataset, subset, classes, block) if p.method == "UMBEnet"]
    return found[0] if found else None


def table3(data: dict, exps: dict, classes: list[int], dataset: str) -> list[Block]:
    roles = _role_runs(data, "3")
    if not roles:
        return []
    trained = {role["subset"]: name for name, role in roles if role["subset"] != "missing"}
    full = next((name for name, role in roles if role["subset"] == "missing"), None)
    rows = []
    for subset in PAPER_SUBSETS:
        name = trained.get(subset)
        if name is None:
            continue
        found = {c: exps.get((name, c)) for c in classes}
        rows.append(["trained on the subset", subset, name,
                     *_cells(found, subset, {c: _umbenet(subset, c, "trained", dataset) for c in classes})])
    if full is not None:
        for subset in PAPER_SUBSETS:
            found = {c: exps.get((full, c)) for c in classes}
            rows.append(["full model, modalities missing", subset, full,
                         *_cells(found, subset, {c: _umbenet(subset, c, "missing", dataset) for c in classes})])
    return [Heading("Table 3: modality subsets", 2),
            Table(["Model", "Modalities", "Run", *_score_columns(classes)], rows,
                  UAR_NOTE + " First block: a model trained on the subset; second: the full model evaluated with the "
                  "other modalities missing. 10 cl.: runs trained without neutral (--exclude-classes neutral).")]


def table4(data: dict, exps: dict, classes: list[int], dataset: str) -> list[Block]:
    roles = _role_runs(data, "4")
    if not roles:
        return []
    rows = []
    for name, role in sorted(roles, key=lambda nr: (nr[1]["strategy"], nr[1]["length"], nr[1]["size"], nr[1]["top_k"])):
        L, N, K, strategy = role["length"], role["size"], role["top_k"], role["strategy"]
        found = {c: exps.get((name, c)) for c in classes}
        paper = {c: table4_for(dataset, "V+A+T", c, L, N, K, strategy) for c in classes}
        rows.append([str(L), str(N), str(K), strategy, name, *_cells(found, "V+A+T", paper)])
    return [Heading("Table 4: prompt pool and training strategy", 2),
            Table(["Length", "Size", "TopK", "Strategy", "Run", *_score_columns(classes)], rows,
                  UAR_NOTE + " Length: the total prompt length, half pool prompts and half inherent prompts "
                  "(64 = 32 + 32). Full-modality scores (V+A+T).")]


def ablation(data: dict, exps: dict, classes: list[int], dataset: str) -> list[Block]:
    roles = _role_runs(data, "ablation")
    if not roles:
        return []
    cell = {"two_stage": "2-stage", "one_stage": "1-stage"}
    ref = next(a for a in TABLE4 if a.strategy == "1-stage")
    rows = []
    for name, role in roles:
        found = {c: exps.get((name, c)) for c in classes}
        strategy = cell.get(role["arm"])
        paper = {c: table4_for(dataset, "V+A+T", c, ref.length, ref.size, ref.top_k, strategy) if strategy else None
                 for c in classes}
        rows.append([role["arm"], *_cells(found, "V+A+T", paper)])
    return [Heading("Training-strategy ablation", 2),
            Table(["Arm", *_score_columns(classes)], rows,
                  UAR_NOTE + " Equal epoch budgets: a one-stage arm trains the epochs of both stages; the carry arms "
                  "start stage 2 from two_stage's stage 1 and carry all (carry_all) or none (carry_none) of its pool. "
                  f"Paper: Table 4's training-strategy rows (pool {ref.length}/{ref.size}/{ref.top_k}), comparable "
                  f"only at that pool.")]


def plan_runs(data: dict, exps: dict, classes: list[int]) -> list[Block]:
    """A TOML plan: one row per run, its full-subset scores."""
    rows = []
    for r in data["plan"]["runs"]:
        subset = "+".join({"video": "V", "audio": "A", "text": "T"}[m] for m in MODALITIES if m in r["modalities"])
        found = {c: exps.get((r["name"], c)) for c in classes}
        cells = [x for c, f in found.items() for x in (_ours(f, subset, "uar")[0], _ours(f, subset, "war")[0])]
        rows.append([r["name"], subset, r["stage"], *cells])
    return [Heading("Runs of the plan", 2),
            Table(["Run", "Modalities", "Stage", *[h for c in classes for h in (f"UAR {c} cl.", f"WAR {c} cl.")]], rows,
                  UAR_NOTE.split(" Paper:")[0] + " Scores of the modalities each run was trained on.")]


def build_study_report(study: str | Path, out: str | Path | None = None, split: str = "test",
                       title: str | None = None, console: Console | None = None) -> Path:
    """Write report.md and report.html for the study; returns the Markdown's path."""
    console = console or Console()
    if split not in ("test", "val"):
        raise ReportError(f"--split {split!r}: choose test or val (the split `umbenet eval --split` used)")
    study_dir = Path(study)
    data = S.read(study_dir)
    exps = experiments(study_dir, data, split)
    classes = sorted({c for _, c in exps}, reverse=True)
    evaluated = [e for e, _ in exps.values() if e is not None]
    dataset = evaluated[0].dataset if evaluated else "mafw"
    states = [r["state"] for r in data["runs"].values()]
    blocks: list[Block] = [Heading(title or f"Study {data['name']} ({data['plan']['name']})", 1),
                           Para(f"{states.count('done')} of {len(states)} fold-runs done, written "
                                f"{datetime.date.today().isoformat()} by umbenet report from {study_dir}.")]
    if evaluated and evaluated[0].tiny:
        blocks.append(Note("These runs use the offline random tiny backbone: their numbers check the pipeline, not "
                           "the method."))
    if dataset != "mafw":
        blocks.append(Note(f"The paper's Tables 3 and 4 are on MAFW; this study's dataset is {dataset}, so no published "
                           f"number is set beside it."))
    tables = table3(data, exps, classes, dataset) + table4(data, exps, classes, dataset) + \
        ablation(data, exps, classes, dataset)
    blocks += tables or plan_runs(data, exps, classes)
    out_dir = Path(out) if out else Path("reports") / data["name"]
    out_dir.mkdir(parents=True, exist_ok=True)
    md, html = out_dir / "report.md", out_dir / "report.html"
    for path, text in ((md, to_markdown(blocks, out_dir)), (html, to_html(blocks, title or data["name"]))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    for b in blocks:
        if isinstance(b, Table):
            console.print(to_markdown([b], out_dir), highlight=False, markup=False, soft_wrap=True)
    console.print(f"report written: {md}, {html}", highlight=False)
    return md
