"""The report's tables, laid out like the paper's, with the published numbers beside ours.

Scores are percentages, mean ± sample std over folds (``metrics.mean_std``); one fold shows its
score alone. A published row follows the row of ours it matches and gives the paper's number with
the difference "(Δ ours − paper)" in points.

Class settings. An 11-class MAFW run is scored on all classes and without neutral under two rules
(``metrics.WITHOUT_NEUTRAL_RULES``): the authors' (the paper's 10-class numbers come from their
``ConfusionMatrix.py``, so those columns carry the comparison) and the strict one (shown, never
compared). A run trained with ``--exclude-classes neutral`` is a true 10-class protocol: its own
scores are set beside the paper's 10-class rows. Runs without some other class have no published
counterpart. Tables are split by dataset and class list.
"""
from __future__ import annotations

from umbenet_cli.evaluation.metrics import RULE_LABELS, UAR_RULE, WITHOUT_NEUTRAL_RULES, mean_std
from umbenet_cli.reporting.collect import PAPER_ORDER, Experiment
from umbenet_cli.reporting.published import DATASETS, PUBLISHED, Published, published_for, table4_for
from umbenet_cli.reporting.render import Block, Heading, Note, Para, Table

# wn: without neutral, authors' rule; wns: without neutral, strict rule.
KEYS = ("uar", "war", "uar_wn", "war_wn", "uar_wns", "war_wns")


def fold_scores(exp: Experiment, subset: str) -> dict[str, list[float]]:
    """Per-fold fractions of one subset: uar, war and (where defined) without neutral, both rules."""
    out: dict[str, list[float]] = {k: [] for k in KEYS}
    for fe in exp.folds:
        e = fe.subset(subset)
        if e is None:
            continue
        wn = e.get("without_neutral_authors") or {}
        # results.json written before both rules existed held the strict rule as "without_neutral".
        wns = e.get("without_neutral_strict") or e.get("without_neutral") or {}
        for k, v in (("uar", e["uar"]), ("war", e["war"]), ("uar_wn", wn.get("uar")), ("war_wn", wn.get("war")),
                     ("uar_wns", wns.get("uar")), ("war_wns", wns.get("war"))):
            if v is not None:
                out[k].append(float(v))
    return out


def mean_pct(values: list[float]) -> float | None:
    return 100 * mean_std(values)[0] if values else None


def ms(values: list[float]) -> str:
    """Fractions per fold -> '41.20 ± 1.10' (percent; sample std), '41.20' for one fold, 'n/a'."""
    if not values:
        return "n/a"
    m, s = mean_std(values)
    return f"{100 * m:.2f}" if len(values) == 1 else f"{100 * m:.2f} ± {100 * s:.2f}"


def beside(paper: float, ours: float | None) -> str:
    return f"{paper:.2f}" if ours is None else f"{paper:.2f} (Δ {ours - paper:+.2f})"


def n_classes(exp: Experiment) -> tuple[int, int | None]:
    """Class settings of ``exp``: all its classes, and without neutral (None without a neutral class)."""
    c = len(exp.classes)
    return c, (c - 1 if exp.has_neutral else None)


def published_classes(exp: Experiment) -> tuple[int | None, int | None]:
    """The published class settings ``exp``'s scores compare with: (all its classes, without
    neutral by the authors' rule). A run trained without neutral compares with the published rows
    that leave neutral out; a run without any other class compares with none (None)."""
    c, c10 = n_classes(exp)
    if exp.excluded and {x.lower() for x in exp.excluded} != {"neutral"}:
        return None, None
    return c, c10


def keys(exp: Experiment) -> tuple[str, ...]:
    return KEYS if exp.has_neutral else KEYS[:2]


def setting_label(exp: Experiment) -> str:
    """How the all-classes scores of ``exp`` were obtained, in words."""
    if exp.excluded:
        return f"{len(exp.classes)} cl., trained without {', '.join(exp.excluded)}"
    return f"{len(exp.classes)} cl."


def score_headers(exp: Experiment) -> list[str]:
    c, c10 = n_classes(exp)
    h = [f"UAR ({setting_label(exp)})", f"WAR ({setting_label(exp)})"]
    if c10:
        h += [f"{k} ({c10} cl., w/o neutral, {RULE_LABELS[r]})" for r in ("authors", "strict") for k in ("UAR", "WAR")]
    return h


def score_cells(exp: Experiment, subset: str) -> list[str]:
    sc = fold_scores(exp, subset)
    return [ms(sc[k]) for k in keys(exp)]


def paper_cells(exp: Experiment, subset: str, all_cl: Published | None, wn: Published | None) -> list[str]:
    """Published UAR/WAR (all classes; without neutral beside the authors' rule; nothing beside
    the strict rule, which no published number uses) with our difference, '—' where none."""
    sc = fold_scores(exp, subset)
    cells = [beside(all_cl.uar, mean_pct(sc["uar"])) if all_cl else "—",
             beside(all_cl.war, mean_pct(sc["war"])) if all_cl else "—"]
    if exp.has_neutral:
        cells += [beside(wn.uar, mean_pct(sc["uar_wn"])) if wn else "—",
                  beside(wn.war, mean_pct(sc["war_wn"])) if wn else "—", "—", "—"]
    return cells


def _rule_caption(exp: Experiment) -> str:
    cap = f"Scores in %, mean ± sample std over folds. {UAR_RULE}"
    if exp.excluded:
        cap += (f" This run was trained, validated and tested without {', '.join(exp.excluded)} "
                f"({len(exp.classes)} classes, their own prompts)"
                + ("; it is compared with the paper's 10-class rows." if published_classes(exp)[0] else "."))
    if exp.has_neutral:
        cap += (" W/o neutral: " + "; ".join(f"{WITHOUT_NEUTRAL_RULES[r]}" for r in ("authors", "strict"))
                + ". The paper's 10-class numbers are set beside the authors' rule.")
    return cap


def _by_dataset(experiments: list[Experiment]) -> dict[str, list[Experiment]]:
    """Experiments grouped by dataset and class list (one table each: the columns differ), the
    full class list first. Keys: "mafw", or "mafw, 10 classes (without neutral)"."""
    groups: dict[tuple, list[Experiment]] = {}
    for exp in experiments:
        groups.setdefault((exp.dataset, tuple(exp.classes), exp.excluded), []).append(exp)
    out: dict[str, list[Experiment]] = {}
    for (dataset, classes, excluded), exps in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[0][1]))):
        name = dataset if not excluded else f"{dataset}, {len(classes)} classes (without {', '.join(excluded)})"
        out.setdefault(name, []).extend(exps)
    return out


def _umbenet(exp: Experiment, subset: str, block: str) -> tuple[Published | None, Published | None]:
    c, c10 = published_classes(exp)
    pick = [p for p in published_for(exp.dataset, subset, c, block) if p.method == "UMBEnet"] if c else []
    pick10 = [p for p in published_for(exp.dataset, subset, c10, block) if p.method == "UMBEnet"] if c10 else []
    return (pick[0] if pick else None), (pick10[0] if pick10 else None)


def table3(experiments: list[Experiment]) -> list[Block]:
    """Table 3 per dataset: subsets trained on, then the full-modality model with modalities dropped."""
    blocks: list[Block] = []
    for dataset, exps in _by_dataset(experiments).items():
        full = max(len(e.trained) for e in exps)
        headers = ["Block", "Subset", "Run", "Folds", *score_headers(exps[0])]
        rows, muted = [], set()
        for block, label in (("trained", "trained on the subset"), ("missing", "missing-modality inference")):
            for subset in PAPER_ORDER:
                for exp in exps:
                    if not fold_scores(exp, subset)["uar"]:
                        continue
                    if exp.trained_name != subset if block == "trained" else len(exp.trained) < full:
                        continue
                    rows.append([label, subset, exp.name, str(len(fold_scores(exp, subset)["uar"])),
                                 *score_cells(exp, subset)])
                    p, p10 = _umbenet(exp, subset, block)
                    if p or p10:
                        muted.add(len(rows))
                        rows.append([label, subset, f"UMBEnet (paper, {(p or p10).source.split(', ')[-1]})", "",
                                     *paper_cells(exp, subset, p, p10)])
        blocks += [Heading(f"Table 3 style: modality subsets, {dataset}", 3),
                   Table(headers, rows, _rule_caption(exps[0]), muted)]
        if not any(r[0] == "trained on the subset" for r in rows):
            blocks.append(Para("No run here was trained on fewer modalities than the dataset has."))
    return blocks


def _pool_key(exp: Experiment) -> tuple:
    p = exp.pool
    return (PAPER_ORDER.index(exp.trained_name) if exp.trained_name in PAPER_ORDER else 99,
            not p.get("enabled", True), exp.prompt_length or 0, p.get("size", 0), p.get("top_k", 0), exp.strategy)


def pool_cells(exp: Experiment) -> list[str]:
    p = exp.pool
    if not p.get("enabled", True):
        return ["no pool", "—", "—"]
    return [length_cell(exp), str(p.get("size", "?")), str(p.get("top_k", "?"))]


def length_cell(exp: Experiment) -> str:
    """Table 4's overall prompt length with its parts: "64 (32 pool + 32 inherent)"."""
    total = exp.prompt_length
    if total is None:
        return f"? ({exp.pool.get('length', '?')} pool + ? inherent)"
    return f"{total} ({exp.pool.get('length')} pool + {total - int(exp.pool.get('length'))} inherent)"


def _table4_paper(exp: Experiment, strategy: str | None = None):
    p = exp.pool
    if not p.get("enabled", True):
        return None, None
    c, c10 = published_classes(exp)
    args = (exp.dataset, exp.trained_name, exp.prompt_length, p.get("size"), p.get("top_k"), strategy or exp.strategy)
    return (table4_for(args[0], args[1], c, *args[2:]) if c else None), (table4_for(args[0], args[1], c10, *args[2:]) if c10 else None)


def table4(experiments: list[Experiment]) -> list[Block]:
    """Table 4 per dataset: full-subset scores by pool (length, size, top-k) and training strategy."""
    blocks: list[Block] = []
    for dataset, exps in _by_dataset(experiments).items():
        exps = sorted(exps, key=_pool_key)
        headers = ["Run", "Modalities", "Length", "Size", "TopK", "Strategy", "Folds", *score_headers(exps[0])]
        rows, muted = [], set()
        for exp in exps:
            s = exp.trained_name
            rows.append([exp.name, s, *pool_cells(exp), exp.strategy, str(len(exp.folds)), *score_cells(exp, s)])
            p, p10 = _table4_paper(exp)
            if p or p10:
                muted.add(len(rows))
                rows.append(["UMBEnet (paper, Table 4)", s, *pool_cells(exp), exp.strategy, "",
                             *paper_cells(exp, s, p, p10)])
        blocks += [Heading(f"Table 4 style: prompt pool and training strategy, {dataset}", 3),
                   Table(headers, rows, "Full-subset scores (the modalities each run was trained on). "
                         + _rule_caption(exps[0]), muted)]
        blocks += _strategy_table(exps)
    return blocks


def _strategy_table(exps: list[Experiment]) -> list[Block]:
    groups: dict[tuple, list[Experiment]] = {}
    for exp in exps:
        groups.setdefault(_pool_key(exp)[:5], []).append(exp)
    rows, muted = [], set()
    for group in groups.values():
        if len({e.strategy for e in group}) < 2:
            continue
        for exp in group:
            s = exp.trained_name
            rows.append([exp.strategy, exp.name, s, "/".join(pool_cells(exp)), str(len(exp.folds)), *score_cells(exp, s)])
            p, p10 = _table4_paper(exp)
            if p or p10:
                muted.add(len(rows))
                rows.append([exp.strategy, "UMBEnet (paper, Table 4)", s, "/".join(pool_cells(exp)), "",
                             *paper_cells(exp, s, p, p10)])
        one = next((e for e in group if e.strategy == "1-stage"), None)
        two = next((e for e in group if e.strategy == "2-stage"), None)
        if one and two:
            a, b = fold_scores(two, two.trained_name), fold_scores(one, one.trained_name)
            diffs = [f"{mean_pct(a[k]) - mean_pct(b[k]):+.2f}" if a[k] and b[k] else "n/a"
                     for k in keys(one)]
            rows.append(["Δ 2-stage − 1-stage", "", two.trained_name, "/".join(pool_cells(two)), "", *diffs])
    if not rows:
        return []
    headers = ["Strategy", "Run", "Modalities", "Pool L/N/K", "Folds", *score_headers(exps[0])]
    return [Para("Training strategy (runs that differ in it at equal pool settings):"),
            Table(headers, rows, "2-stage: stage 1 unimodal, stage 2 random subsets with the activated prompts "
                  "carried over; 1-stage: random subsets from the start.", muted)]


def overall(experiments: list[Experiment]) -> list[Block]:
    """Tables 1-2 style: one line per run (its full subset), then the published numbers."""
    rows = []
    for exp in experiments:
        s = exp.trained_name
        sc = fold_scores(exp, s)
        rows.append([exp.name, exp.dataset, setting_label(exp).removesuffix(" cl."), s, exp.strategy, "/".join(pool_cells(exp)),
                     str(len(sc["uar"])), ms(sc["uar"]), ms(sc["war"])])
    blocks: list[Block] = [Table(["Run", "Dataset", "Classes", "Modalities", "Strategy", "Pool L/N/K", "Folds",
                                  "UAR", "WAR"], rows, "Scores in %, mean ± sample std over folds, on all the classes each run "
                                  f"was trained on. {UAR_RULE}")]
    for dataset in sorted({e.dataset for e in experiments} & DATASETS):
        pub = [p for p in PUBLISHED if p.dataset == dataset and p.block == "trained"]
        blocks += [Para(f"Published on {dataset} (all classes and, for MAFW, the 10-class setting):"),
                   Table(["Method", "Mode", "Classes", "UAR", "WAR", "Source"],
                         [[p.method, p.subset, str(p.classes), f"{p.uar:.2f}", f"{p.war:.2f}", p.source] for p in pub])]
    return blocks


def comparisons(experiments: list[Experiment]) -> list[list[str]]:
    """Every (ours, published) pair of equal dataset, subset and class setting: the rows of the
    comparison table, with ours − paper in points. Our 11-class scores without neutral are taken
    by the authors' rule (the one behind the paper's 10-class numbers); a run trained without
    neutral is compared by its own scores."""
    rows = []
    for exp in experiments:
        c, c10 = published_classes(exp)
        scored = "trained without " + ", ".join(exp.excluded) if exp.excluded else "all classes"
        settings = ([(c, "uar", "war", scored)] if c else []) + \
            ([(c10, "uar_wn", "war_wn", f"w/o neutral, {RULE_LABELS['authors']}")] if c10 else [])
        pairs = [("trained", exp.trained_name)]
        if len(exp.trained) == max(len(e.trained) for e in experiments if e.dataset == exp.dataset):
            pairs += [("missing", e["name"]) for e in exp.folds[0].results["subsets"]]
        for block, subset in pairs:
            sc = fold_scores(exp, subset)
            for classes, ku, kw, how in settings:
                found = [(p, f"Table 3 block: {block}") for p in published_for(exp.dataset, subset, classes, block)]
                if block == "trained" and exp.pool.get("enabled", True):
                    p = exp.pool
                    t4 = table4_for(exp.dataset, subset, classes, exp.prompt_length, p.get("size"), p.get("top_k"), exp.strategy)
                    if t4:
                        found.append((t4, f"pool {t4.length}/{t4.size}/{t4.top_k}, {t4.strategy}"))
                for pub, setting in found:
                    method = getattr(pub, "method", "UMBEnet")
                    ou, ow = mean_pct(sc[ku]), mean_pct(sc[kw])
                    rows.append([exp.dataset, str(classes), how, exp.name, subset, setting, f"{method} ({pub.source})",
                                 ms(sc[ku]), f"{pub.uar:.2f}", f"{ou - pub.uar:+.2f}" if ou is not None else "n/a",
                                 ms(sc[kw]), f"{pub.war:.2f}", f"{ow - pub.war:+.2f}" if ow is not None else "n/a"])
    return rows


def comparison(experiments: list[Experiment]) -> list[Block]:
    rows = comparisons(experiments)
    blocks: list[Block] = []
    unmatched = sorted({e.dataset for e in experiments} - DATASETS)
    if unmatched:
        blocks.append(Note(f"No published counterpart for dataset(s) {', '.join(unmatched)}: the paper reports MAFW, "
                           "DFEW and FERV39k only, so those runs are not compared with it."))
    tiny = sorted({r[3] for r in rows} & {e.name for e in experiments if e.tiny})
    if tiny:
        blocks.append(Note(f"{', '.join(tiny)}: random tiny backbone; the differences below measure a pipeline "
                           "check against the paper, not the method."))
    if rows:
        blocks.append(Table(["Dataset", "Classes", "Scored as", "Ours", "Subset", "Setting", "Published", "UAR ours",
                             "UAR paper", "Δ UAR", "WAR ours", "WAR paper", "Δ WAR"], rows,
                            "Δ = ours − paper, in percentage points (ours: mean over folds). 'w/o neutral, "
                            f"authors' rule': {WITHOUT_NEUTRAL_RULES['authors']}. 'trained without neutral': a "
                            "run trained, validated and tested on the 10 other classes."))
    elif not unmatched:
        blocks.append(Para("No published number matches these runs' dataset, modalities and class setting."))
    return blocks


def per_fold(experiments: list[Experiment]) -> Table:
    """Every fold and subset, as evaluated."""
    rows = []
    for exp in experiments:
        for fe in exp.folds:
            for e in fe.results["subsets"]:
                wn = e.get("without_neutral_authors") or {}
                wns = e.get("without_neutral_strict") or e.get("without_neutral") or {}
                cells = [e["uar"], e["war"], wn.get("uar"), wn.get("war"), wns.get("uar"), wns.get("war")]
                rows.append([exp.name, fe.run_dir.name, "train-test" if fe.fold is None else str(fe.fold),
                             fe.stage_dir.name, str(len(exp.classes)), e["name"], str(e["n"]), str(e["n_without_input"]),
                             *("n/a" if v is None else f"{100 * v:.2f}" for v in cells)])
    return Table(["Experiment", "Run", "Fold", "Stage", "Classes", "Subset", "Clips", "Left out", "UAR", "WAR",
                  "UAR w/o neutral (authors' rule)", "WAR w/o neutral (authors' rule)",
                  "UAR w/o neutral (strict rule)", "WAR w/o neutral (strict rule)"], rows,
                 "Scores in %. Left out: clips with none of the subset's modalities. Classes: those the run "
                 "was trained and scored on (fewer where classes were excluded).")


__all__ = ["comparison", "comparisons", "fold_scores", "ms", "overall", "per_fold", "table3", "table4"]
