"""RESULTS*.md of the controlled benchmark from its results*.json: the Table 3 layout, the paired
comparisons (two-stage against one-stage; each head part against the next), the head diagnostics,
the Table 4 sweep and the history of the benchmark's runs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
ROWS = ("V", "A", "T", "V+T", "V+A", "A+T", "V+A+T")
MISSING_ROWS = ("V", "A", "T", "V+T", "V+A", "A+T")
COLUMNS = (("bayes", "Bayes-optimal"), ("plugin", "plug-in (same clips)"), ("trained_on_subset", "trained on the subset"),
           ("two_stage", "full, two-stage"), ("one_stage", "full, one-stage"), ("no_pool", "pool off"),
           ("class_vectors", "class vectors"), ("two_stage_scale100", "two-stage, logit scale 100"),
           ("late_fusion", "late fusion"))
HEAD_ARMS = (("two_stage", "class prompts, pool (the paper)"), ("one_stage", "the same, one-stage"),
             ("no_pool", "class prompts, no pool (no P')"), ("class_vectors", "learned class vectors"),
             ("two_stage_scale100", "class prompts, pool, logit scale 100"))

# Earlier runs of this benchmark (full-modality test WAR, mean over seeds; A: the full model with
# only audio against the model trained on audio alone). From results*.json at those commits.
# RESULTS*.md may end with a reading written by hand after a run: everything from this line on is
# kept when the file is written again (a rerun's numbers then sit above the old reading until it
# is rewritten; its date and commit say which run it reads).
KEEP_MARK = "<!-- below this line: written by hand after the run; write_results.py keeps it when it rewrites this file -->"

HISTORY = [
    ("2026-11-24", "2217532", "first run", "120 x 3", 70.0, None, 52.6, 53.1, 53.1, None, 56.6, "12.4 / 12.4"),
    ("2026-11-24", "06ec8d4", "learnable audio cue, plug-in column", "120 x 3", 70.8, 66.8, 54.0, 52.4, 55.7, None, 60.2,
     "16.7 / 18.4"),
    ("2026-11-24", "bff9742", "log-mel floor, audio encoder fix", "120 x 5", 70.8, 68.9, 55.1, 54.4, 52.2, None, 60.4,
     "19.9 / 22.0"),
    ("2026-11-24", "bff9742", "the same, 4x data", "480 x 2", 72.1, 72.9, 61.8, 65.8, 64.3, None, 66.0, "21.0 / 27.8"),
]


def values(ps: list[dict], key: str, subset: str, metric: str = "war") -> np.ndarray | None:
    if not all(subset in p.get(key, {}) and p[key][subset] is not None for p in ps):
        return None
    return np.array([100 * p[key][subset][metric] for p in ps])


def mean_sd(v: np.ndarray | None) -> str:
    if v is None:
        return "—"
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    """Per-seed differences a - b: mean, standard error, 95% t interval, how many seeds favour a."""
    d = a - b
    n = len(d)
    se = d.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
    half = stats.t.ppf(0.975, n - 1) * se if n > 1 else float("nan")
    return {"mean": float(d.mean()), "se": float(se), "lo": float(d.mean() - half), "hi": float(d.mean() + half),
            "wins": int((d > 0).sum()), "n": n, "per_seed": d.round(1).tolist()}


def paired_cell(p: dict) -> str:
    return (f"{p['mean']:+.1f} ± {p['se']:.1f} [{p['lo']:+.1f}, {p['hi']:+.1f}] ({p['wins']}/{p['n']})")


def verdict(p: dict) -> str:
    if p["lo"] > 0:
        return "two-stage ahead (interval above 0)"
    if p["hi"] < 0:
        return "two-stage behind (interval below 0)"
    return "not resolved (interval spans 0)"


def table3(ps: list[dict]) -> list[str]:
    cols = [(k, n) for k, n in COLUMNS if any(k in p for p in ps)]
    lines = ["| subset | " + " | ".join(name for _, name in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for s in ROWS:
        cells = []
        for key, _ in cols:
            u, w = values(ps, key, s, "uar"), values(ps, key, s, "war")
            cells.append("—" if w is None else f"{mean_sd(w)} ({mean_sd(u)})")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def two_vs_one(ps: list[dict]) -> tuple[list[str], dict]:
    out, lines = {}, ["| subset | two-stage − one-stage, WAR: mean ± SE [95% t interval] (seeds two-stage ahead) | per seed | reading |",
                      "|---|---|---|---|"]
    for s in MISSING_ROWS + ("V+A+T",):
        p = paired(values(ps, "two_stage", s), values(ps, "one_stage", s))
        out[s] = p
        lines.append(f"| {s} | {paired_cell(p)} | {', '.join(f'{x:+.1f}' for x in p['per_seed'])} | {verdict(p)} |")
    return lines, out


def attribution(ps: list[dict]) -> list[str]:
    """Late fusion − UMBEnet at full modality as a sum of paired steps, each removing one part."""
    steps = [("two_stage", "no_pool", "the pool and P' (pool off − with pool)"),
             ("no_pool", "class_vectors", "class embeddings from the frozen text tower (learned vectors − tower)"),
             ("class_vectors", "late_fusion", "fusion + one cosine head (late fusion − class vectors)")]
    lines = ["| step | full-modality WAR gained by the step: mean ± SE [95% t interval] (seeds) |", "|---|---|"]
    total = np.zeros(len(ps))
    for a, b, what in steps:
        va, vb = values(ps, a, "V+A+T"), values(ps, b, "V+A+T")
        if va is None or vb is None:
            continue
        total += vb - va
        lines.append(f"| {what} | {paired_cell(paired(vb, va))} |")
    lf, ts = values(ps, "late_fusion", "V+A+T"), values(ps, "two_stage", "V+A+T")
    lines.append(f"| **sum: late fusion − UMBEnet two-stage** | {paired_cell(paired(lf, ts))} |")
    hot = values(ps, "two_stage_scale100", "V+A+T")
    if hot is not None:
        lines.append(f"| aside: a trained CLIP's logit scale, 100 instead of 14.3 (two-stage at 100 − two-stage) | "
                     f"{paired_cell(paired(hot, ts))} |")
    return lines


def head_table(ps: list[dict]) -> list[str]:
    lines = ["| arm | class cosine, mean (max): start → trained | logit ceiling (median pair): start → trained | "
             "logit spread per clip, median (p90), trained | e_c across clips | logit scale |", "|---|---|---|---|---|---|"]
    for key, name in HEAD_ARMS:
        if not all("_head" in p.get(key, {}) for p in ps):
            continue
        h = [p[key]["_head"] for p in ps]

        def avg(which, *path):
            v = [x[which] for x in h]
            for k in path:
                v = [x[k] for x in v]
            return float(np.mean(v))
        lines.append(
            f"| {name} | {avg('initial', 'class_cosine', 'mean'):.3f} ({avg('initial', 'class_cosine', 'max'):.3f}) → "
            f"{avg('trained', 'class_cosine', 'mean'):.3f} ({avg('trained', 'class_cosine', 'max'):.3f}) | "
            f"{avg('initial', 'logit_range', 'ceiling_median'):.2f} → {avg('trained', 'logit_range', 'ceiling_median'):.2f} | "
            f"{avg('trained', 'logit_range', 'spread_median'):.2f} ({avg('trained', 'logit_range', 'spread_p90'):.2f}) | "
            f"{avg('trained', 'across_clips'):.3f} | {avg('trained', 'logit_scale'):.2f} |")
    return lines


def carried_lines(ps: list[dict], seeds: list[int]) -> list[str]:
    out = []
    for key in ("two_stage", "no_pool", "class_vectors"):
        cells = []
        for s, p in zip(seeds, ps):
            init = p.get(key, {}).get("_stage2_init")
            cells.append(f"seed {s}: {init['carried']} carried / {init['fresh']} fresh" if init else f"seed {s}: no pool")
        out.append(f"- {key}: " + "; ".join(cells))
    return out


def sweep_table(sweep: dict) -> list[str]:
    seeds = sorted(sweep, key=int)
    keys = list(sweep[seeds[0]])
    lines = [f"| length | size | top-k | WAR, mean ± sd of {len(seeds)} seeds | UAR | per seed (WAR) | prompts carried / fresh per seed |",
             "|---|---|---|---|---|---|---|"]
    for key in keys:
        L, N, k = key.split("/")
        w = np.array([100 * sweep[s][key]["war"] for s in seeds])
        u = np.array([100 * sweep[s][key]["uar"] for s in seeds])
        inits = [sweep[s][key].get("stage2_init") for s in seeds]
        car = ", ".join(f"{i['carried']}/{i['fresh']}" if i else "—" for i in inits)
        lines.append(f"| {L} | {N} | {k} | {mean_sd(w)} | {mean_sd(u)} | {', '.join(f'{x:.1f}' for x in w)} | {car} |")
    return lines


def headline(results: dict) -> tuple:
    ps = results["per_seed"]

    def m(key, s="V+A+T"):
        v = values(ps, key, s)
        return None if v is None else round(float(v.mean()), 1)
    a_full, a_sub = m("two_stage", "A"), m("trained_on_subset", "A")
    return (results.get("date", "?"), results.get("commit", "?"), "method as the paper states it (#11)",
            f"{results['clips_per_class']} x {len(ps)}", m("bayes"), m("plugin"), m("two_stage"), m("one_stage"),
            m("no_pool"), m("class_vectors"), m("late_fusion"), f"{a_full} / {a_sub}")


def history_table(rows: list[tuple]) -> list[str]:
    lines = ["| date | library commit | what changed | clips/class x seeds | Bayes | plug-in | two-stage | one-stage | "
             "pool off | class vectors | late fusion | A: full / trained on A |", "|---" * 12 + "|"]
    for r in rows:
        lines.append("| " + " | ".join("—" if x is None else str(x) for x in r) + " |")
    return lines


def write_markdown(results: dict, path: Path) -> None:
    seeds, ps = results["seeds"], results["per_seed"]
    lines = ["# Controlled learning benchmark" + (f": {results['clips_per_class']} clips per class" if "-clips" in path.name else "") + "\n",
             f"Command: `{results['command']}`  ",
             f"Library commit: {results['commit']}; {results['date']}.  ",
             f"Machine: {results['machine']}; {len(seeds)} seeds {seeds}, fold 1 of 5, {results['clips_per_class']} clips per "
             f"class, {results['epochs']} epochs max per stage; time: {results['seconds_note']}.  ",
             f"Model settings (`--set`, preset `tiny`): {', '.join(results['settings'])}; the arms add "
             + "; ".join(f"{k}: `{' '.join(v)}`" for k, v in results["arms"].items()) + ".\n",
             "Synthetic MAFW-like caches (8 classes, neutral without text, 3% of clips without audio, 5% without text); "
             f"signal-to-noise per modality {results['signal']} so that video > text > audio alone. Scores are % on the "
             "test fold, mean ± sample sd over seeds; clips that have none of a subset's modalities are left out of it. "
             "Bayes-optimal: the generator's true parameters. Plug-in: the same classifier with class means estimated "
             "from the training clips UMBEnet sees.\n",
             "## Table 3 layout: WAR (UAR)\n", *table3(ps), ""]
    tvo, pairs = two_vs_one(ps)
    lines += ["## The paper's claim: two-stage against one-stage, paired by seed\n",
              "Same seed = same cache, same split, same initial weights; the difference is the training schedule. "
              "SE = sd of the per-seed differences / sqrt(n); the interval is Student's t with n − 1 degrees of freedom.\n",
              *tvo, "", "What stage 2 started from (init.json of each run):\n", *carried_lines(ps, seeds), ""]
    lines += ["## Where the head's points go (full modality, paired by seed)\n",
              "Each step removes one part of UMBEnet's head and keeps the rest: pool off = class prompts through the "
              "text tower with the inherent prompts only; class vectors = no text tower, one learned vector per class "
              "(same fused feature, cosine, logit scale); late fusion = no fusion attention, one linear head per "
              "modality, mean of the present modalities' logits.\n", *attribution(ps), "",
              "Class embeddings and logits (`head.json` of `umbenet eval`, V+A+T, mean over seeds; start = the model "
              "the run was built as, before training):\n", *head_table(ps), ""]
    lines += ["## Against the goals (WAR)\n"]
    f2, lf, pl = (float(values(ps, k, "V+A+T").mean()) for k in ("two_stage", "late_fusion", "plugin"))
    lines.append(f"- Full modality: two-stage {f2:.1f} against late fusion {lf:.1f} ({f2 - lf:+.1f}; goal ≥ 0) — "
                 f"{'met' if f2 >= lf else 'missed'}; against the plug-in {pl:.1f} ({f2 - pl:+.1f}; goal within 3) — "
                 f"{'met' if pl - f2 <= 3 else 'missed'}.")
    for s in MISSING_ROWS:
        full, sub = values(ps, "two_stage", s), values(ps, "trained_on_subset", s)
        if sub is None:
            lines.append(f"- {s}: no model trained on {s} alone (the paper has none).")
            continue
        p = paired(full, sub)
        lines.append(f"- {s}: full model {full.mean():.1f} vs trained on {s} alone {sub.mean():.1f}: "
                     f"{p['mean']:+.1f} ± {p['se']:.1f} (goal ≥ −2) — {'met' if p['mean'] >= -2 else 'missed'}.")
    ahead = [s for s in MISSING_ROWS if pairs[s]["mean"] >= 0]
    lines.append(f"- Two-stage ≥ one-stage on the missing-modality rows: mean difference ≥ 0 on {len(ahead)} of "
                 f"{len(MISSING_ROWS)} ({', '.join(ahead) or 'none'}); intervals above 0: "
                 f"{', '.join(s for s in MISSING_ROWS if pairs[s]['lo'] > 0) or 'none'}.")
    if results.get("sweep"):
        lines += ["", f"## Table 4 layout ({results['sweep_epochs']} epochs per stage): full-modality test scores\n",
                  *sweep_table(results["sweep"])]
    if path.name == "RESULTS.md":
        rows = [*HISTORY, headline(results)]
        big = HERE / "results-480-clips.json"
        if big.is_file():
            rows.append(headline(json.loads(big.read_text())))
        lines += ["", "## History of this benchmark (full-modality WAR, mean over seeds)\n", *history_table(rows)]
    old = path.read_text() if path.is_file() else ""
    kept = old[old.index(KEEP_MARK):] if KEEP_MARK in old else ""
    path.write_text("\n".join(lines) + "\n" + ("\n" + kept if kept else ""))
