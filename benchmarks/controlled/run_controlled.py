"""Controlled benchmark: does UMBEnet's two-stage transfer matter? Arms at equal epoch budgets on
synthetic caches whose Bayes-optimal scores are known (issue #23).

    .venv/bin/python benchmarks/controlled/run_controlled.py --part seed:0     # one seed's arms
    .venv/bin/python benchmarks/controlled/run_controlled.py --part table4:0   # one seed's Table 4 cells
    .venv/bin/python benchmarks/controlled/run_controlled.py --merge           # results.json, RESULTS.md
    bash benchmarks/controlled/run_all.sh                                      # all of it, 2 at a time

Each seed writes a MAFW-like synthetic cache (8 classes incl. neutral; video > text > audio in
class information; neutral clips have no text; a few clips lack audio or text). On fold 1 and
with the same cache, split, batches and initial weights (``--seed`` = the seed), the arms
(``ARMS``) differ only in their schedule:

- two_stage: E epochs of stage 1 (one modality per clip), then E of stage 2 with the prompts the
  counting pass finds significantly selected (``pool.transfer=significant``);
- one_stage, one_stage_all_modalities: 2E epochs from scratch, random missing modalities or every
  clip with all of its modalities (``--all-modalities``);
- two_stage_carry_all / _carry_none: E epochs of stage 2 from two_stage's stage-1 checkpoint
  (``--init-from``), every prompt carried or none (the transfer isolated from the pre-training);
- two_stage_stage2_lr: the remedy arm (``REMEDY``), stage 2 from the same checkpoint with another
  schedule;
- authors_code: the authors' released model and schedule (scalar gate summed over k, batch-mean
  query, keys without gradient, Adam 2e-4, wd 1e-6, plateau x0.3 at threshold 1e-3) at the tiny
  widths, the benchmark's batch and E + E epochs.

Per arm and seed the part records test UAR/WAR per modality subset, each stage's epoch budget,
epochs run, best epoch and validation curve, what stage 2 carried (and what every other rule
would have carried from the same counts), and the counting pass of the *untrained* stage-1 model
(a control: what the rule carries before anything is learned). ``table4:N`` parts train the paper's
Table 4 grid (total prompt length x pool size x top-k; length split half pool, half inherent as
the authors' code) two-stage. Seeds 10 and 11 are tuning seeds (tune_one.py's default, the
script's first full run) and never reported. Results: results.json and RESULTS.md beside this script; CI never runs this.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from plugin_reference import plugin_log_likelihoods  # noqa: E402
from write_results import write_markdown  # noqa: E402

from umbenet_cli.cli import main  # noqa: E402
from umbenet_cli.data.cache_read import read_features  # noqa: E402
from umbenet_cli.data.synthetic import (SyntheticSpec, bayes_log_likelihoods, bayes_predictions,  # noqa: E402
                                        write_synthetic_cache)
from umbenet_cli.evaluation.metrics import confusion_matrix, uar, war  # noqa: E402
from umbenet_cli.model import load_backbone  # noqa: E402
from umbenet_cli.model.checkpoint import load_weights  # noqa: E402
from umbenet_cli.model.config import TINY_BACKBONE, UMBEnetConfig  # noqa: E402
from umbenet_cli.model.umbenet import UMBEnet  # noqa: E402
from umbenet_cli.training.data import make_splits  # noqa: E402
from umbenet_cli.training.distributed import DistInfo  # noqa: E402
from umbenet_cli.training.two_stage import MODALITY_CODES, TRANSFER_RULES, activated, count_selections  # noqa: E402

CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt")
SIGNAL = {"video": 1.6, "audio": 0.8, "text": 1.1}  # Bayes: V ~57%, T ~41%, A ~31%
MISSING = {"video": 0.0, "audio": 0.03, "text": 0.05}
CLIPS_PER_CLASS = 120
EPOCHS = 20  # E, epochs per stage; the one-stage arms get 2E
TUNING_SEEDS = (10, 11)
SUBSETS = ("V", "A", "T", "V+T", "V+A", "V+A+T", "A+T")
# The paper's main pool (N 32, k 5) at the tiny widths: total prompt length 16 = 8 pool + 8 inherent
# tokens, split in half as the authors' code splits its 64.
SETTINGS = {"audio.input": "logmel", "audio.seconds": 1.0, "audio.channels": 32, "audio.hidden": 64,
            "optim.stop_train_accuracy": 1.0, "optim.batch_size": 16, "pool.size": 32, "pool.top_k": 5,
            "pool.length": 8, "inherent_length": 8, "temporal.dropout": 0.1, "fusion.dropout": 0.1}
# The authors' released model and schedule (preset authors-code) on the tiny widths and the
# benchmark's batch: everything of that preset but the backbone, the prompt lengths, 30 epochs, batch 8.
AUTHORS_CODE = {"pool.query_scope": "batch", "pool.train_keys": False, "pool.key_loss_weight": 0.0,
                "sff.gate": "scalar", "sff.combine": "sum", "sff.l1_lambda": 0.01, "optim.lr": 2e-4,
                "optim.weight_decay": 1e-6, "optim.plateau_factor": 0.3, "optim.plateau_threshold": 1e-3}
# The remedy arm for stage 2's early best epoch in the earlier runs (best at epoch 1-10 of 20): the
# issue's first suspect, too high a learning rate after the transfer. Fixed before any reported seed
# ran (seed 10, a tuning seed, ran every arm first to check the script and the cost): stage 2 from
# two_stage's stage 1 at a tenth of the learning rate, the authors' 2e-4.
REMEDY = {"optim.lr": 2e-4}
TABLE4 = [(32, 8, 5), (32, 16, 5), (32, 32, 5), (64, 8, 3), (64, 8, 5), (64, 16, 3), (64, 16, 5), (64, 32, 3), (64, 32, 5)]
STAGE1 = "{stage1}"  # in an arm's arguments: two_stage's stage-1 checkpoint of the same seed


def sets(d: dict) -> list[str]:
    return [x for k, v in d.items() for x in ("--set", f"{k}={v}")]


# name: (arguments beside the shared settings, the epoch budget per stage)
ARMS = {
    "two_stage": (["--stage", "both"], {"stage1": EPOCHS, "stage2": EPOCHS}),
    "one_stage": (["--stage", "one", *sets({"optim.max_epochs": 2 * EPOCHS})], {"onestage": 2 * EPOCHS}),
    "one_stage_all_modalities": (["--stage", "one", "--all-modalities", *sets({"optim.max_epochs": 2 * EPOCHS})],
                                 {"onestage": 2 * EPOCHS}),
    "two_stage_carry_all": (["--stage", "2", "--init-from", STAGE1, *sets({"pool.transfer": "all"})],
                            {"stage1": EPOCHS, "stage2": EPOCHS}),
    "two_stage_carry_none": (["--stage", "2", "--init-from", STAGE1, *sets({"pool.transfer": "none"})],
                             {"stage1": EPOCHS, "stage2": EPOCHS}),
    "two_stage_stage2_lr": (["--stage", "2", "--init-from", STAGE1, *sets(REMEDY)], {"stage1": EPOCHS, "stage2": EPOCHS}),
    "authors_code": (["--stage", "both", *sets(AUTHORS_CODE)], {"stage1": EPOCHS, "stage2": EPOCHS}),
}


def shared_args(epochs: int) -> list[str]:
    return sets(SETTINGS | {"optim.max_epochs": epochs})


def arm_args(arm: str, epochs: int, stage1: Path | None = None) -> list[str]:
    """``umbenet train`` arguments of ``arm`` beside the shared ones, at ``epochs`` per stage."""
    extra, _ = ARMS[arm]
    out = [str(stage1) if a == STAGE1 else a for a in extra]
    return [f"optim.max_epochs={2 * epochs}" if a == f"optim.max_epochs={2 * EPOCHS}" else a for a in out]


def budget(arm: str, epochs: int) -> dict:
    return {k: v // EPOCHS * epochs for k, v in ARMS[arm][1].items()}


def curve(stage_dir: Path) -> list[dict]:
    """The stage's validation curve from metrics.jsonl (per epoch: lr, train and val UAR, val loss)."""
    path = stage_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return [{"epoch": r["epoch"], "lr": r["lr"], "train_loss": round(r["train"]["total"], 4), "train_uar": round(r["train"]["uar"], 4),
             "val_loss": round(r["val"]["loss"], 4), "val_uar": round(r["val"]["uar"], 4)} for r in rows]


def train_eval(cache: Path, runs: Path, name: str, extra: list[str], epochs: int, seed: int, top_k: int = 5) -> dict:
    """Train and evaluate one arm on fold 1: test UAR/WAR per subset, and under ``_``-keys each
    stage's epochs, best epoch and curve, and what stage 2 carried (init.json)."""
    t0 = time.perf_counter()
    args = ["train", "--cache", str(cache), "--runs-dir", str(runs), "--preset", "tiny", "--name", name,
            "--fold", "1", "--seed", str(seed), *shared_args(epochs), *extra]
    assert main(args) == 0, f"training {name} failed"
    assert main(["eval", str(runs / name)]) == 0, f"evaluating {name} failed"
    fold = runs / name / "fold1"
    stage = next(s for s in ("stage2", "onestage", "stage1") if (fold / s / "eval").is_dir())
    res = json.loads((fold / stage / "eval" / "test" / "results.json").read_text())
    stages = {}
    for f in sorted(fold.glob("*/result.json")):
        r = json.loads(f.read_text())
        stages[r["stage"]] = {"epochs": r["epochs"], "best_epoch": r["best_epoch"], "best_val_uar": r["best_val_uar"],
                              "stop_reason": r["stop_reason"], "curve": curve(f.parent)}
    out = {e["name"]: {"uar": e["uar"], "war": e["war"]} for e in res["subsets"]}
    out |= {"_seconds": time.perf_counter() - t0, "_stages": stages}
    init = fold / "stage2" / "init.json"
    if init.is_file():
        out["_transfer"] = transfer_summary(json.loads(init.read_text()), top_k)
    return out


def transfer_summary(init: dict, top_k: int) -> dict:
    """What stage 2 carried (init.json), and what each rule would have carried from the same
    counting pass: ``significant`` from the recorded p-values (the test's draws, per batch under a
    batch query), the count rules from the per-clip counts."""
    out = {"rule": init.get("rule"), "carried": init["carried"], "fresh": init["fresh"]}
    counts, pvals = init.get("stage1_counts"), init.get("stage1_p_values")
    if counts and pvals:
        c = torch.zeros(8, init["stage1_pool_size"], dtype=torch.long)
        for m, row in counts.items():
            c[MODALITY_CODES[m]] = torch.tensor(row)
        p = torch.tensor([row for row in pvals.values()])
        out["would_carry"] = {r: int(activated(c, top_k, r).sum()) for r in TRANSFER_RULES if r != "significant"}
        out["would_carry"]["significant"] = int((p <= init.get("alpha", 0.01) / p.numel()).any(0).sum())
    return out


def stage1_model(seed: int, extra: dict, epochs: int) -> UMBEnet:
    """The stage-1 model a run of this benchmark builds before training (``build_stage_model``:
    the seed, then the model from the preset and the run's settings)."""
    cfg = UMBEnetConfig.preset("tiny").override({k: str(v) for k, v in (SETTINGS | extra | {"optim.max_epochs": epochs}).items()}
                                                | {"classes": list(CLASSES)})
    torch.manual_seed(seed)
    return UMBEnet(cfg, backbone=load_backbone(cfg.backbone))


def untrained_control(cache: Path, seed: int, epochs: int) -> dict:
    """The counting pass on the stage-1 model as built, before any training (same seed, same
    training clips): how many prompts each rule would carry from a model that learned nothing.
    ``significant`` tests against a query without preference; an untrained encoder's queries
    already cluster by modality, so it passes some prompts before anything is learned."""
    table = read_features(cache)
    rows = make_splits(table, 1, 0.1, seed).train
    out = {}
    for name, extra in (("paper", {}), ("authors_code", AUTHORS_CODE)):
        model = stage1_model(seed, extra, epochs)
        seen = count_selections(model, table, rows, table.presence, DistInfo(), model.config.optim.batch_size)
        out[name] = {r: int(activated(seen.queries, model.config.pool.top_k, r).sum()) for r in TRANSFER_RULES}
    return out


def selection_part(seed: int, work: Path, epochs: int, clips_per_class: int, keep: Path) -> dict:
    """Which prompts the counting pass picks before and after stage 1 (two_stage's kept stage-1
    checkpoint of this seed): the significant sets and each modality's k most selected, and how
    much they overlap. Overlap by chance of sets of a and b of N prompts: a * b / N."""
    cache, _ = synthetic_cache(work / f"cache{seed}", seed, clips_per_class)
    ckpt = keep / f"stage1-seed{seed}"
    if not (ckpt / "COMPLETE").is_file():
        raise SystemExit(f"selection:{seed} reads two_stage's stage-1 checkpoint: run --part seed:{seed} first ({ckpt})")
    table = read_features(cache)
    rows = make_splits(table, 1, 0.1, seed).train
    model = stage1_model(seed, {}, epochs)
    k = model.config.pool.top_k
    sets_ = {}
    for when in ("before", "after"):
        if when == "after":
            load_weights(model, ckpt)
        seen = count_selections(model, table, rows, table.presence, DistInfo(), model.config.optim.batch_size)
        sets_[when] = {"significant": torch.nonzero(activated(seen.queries, k, "significant")).flatten().tolist(),
                       "top": {m: torch.argsort(seen.counts[c], descending=True, stable=True)[:k].tolist()
                               for m, c in MODALITY_CODES.items()}}
    b, a = set(sets_["before"]["significant"]), set(sets_["after"]["significant"])
    return {"selection": sets_ | {"significant_both": len(a & b),
                                  "top_both": {m: len(set(sets_["before"]["top"][m]) & set(sets_["after"]["top"][m]))
                                               for m in MODALITY_CODES}}}


def synthetic_cache(folder: Path, seed: int, clips_per_class: int) -> tuple[Path, SyntheticSpec]:
    """The benchmark's MAFW-like synthetic cache of one seed, written to ``folder``, and its spec."""
    spec = SyntheticSpec(classes=CLASSES, clips_per_class=clips_per_class, audio_seconds=1.0, signal=SIGNAL,
                         missing=MISSING, seed=seed)
    return write_synthetic_cache(folder, spec, TINY_BACKBONE, load_backbone(TINY_BACKBONE).fingerprint()), spec


def score(y: np.ndarray, p: np.ndarray, C: int) -> dict:
    keep = p >= 0
    cm = confusion_matrix(y[keep], p[keep], C)
    return {"uar": uar(cm), "war": war(cm)}


def references(cache: Path, spec: SyntheticSpec) -> dict:
    """The Bayes-optimal classifier and the plug-in (class means from the fold's training clips) on
    the same test clips."""
    table = read_features(cache)
    splits = make_splits(table, 1, 0.1, 0)
    test = splits.test
    y = table.labels[test].astype(np.int64)
    ll = bayes_log_likelihoods(table, spec)
    pl = plugin_log_likelihoods(table, np.concatenate([splits.train, splits.val]), spec.sample_rate, spec.num_frames)
    out: dict = {"bayes": {}, "plugin": {}}
    for s in SUBSETS:
        mask = np.array([m in s for m in "VAT"])
        out["bayes"][s] = score(y, bayes_predictions(ll[test], table.presence[test], mask), len(CLASSES))
        out["plugin"][s] = score(y, bayes_predictions(pl[test], table.presence[test], mask), len(CLASSES))
    return out


def seed_part(seed: int, work: Path, epochs: int, clips_per_class: int, arms: list[str], keep: Path) -> dict:
    """Every arm of one seed. two_stage's stage-1 checkpoint is kept under ``keep`` (the carry and
    remedy arms start from it, also in a later ``--arms`` part)."""
    cache, spec = synthetic_cache(work / f"cache{seed}", seed, clips_per_class)
    out = references(cache, spec) | {"untrained_transfer": untrained_control(cache, seed, epochs)}
    runs = work / f"runs{seed}"
    stage1 = keep / f"stage1-seed{seed}"
    for arm in arms:
        needs = STAGE1 in ARMS[arm][0]
        if needs and not (stage1 / "COMPLETE").is_file():
            raise SystemExit(f"{arm} starts from two_stage's stage 1 of seed {seed}: run two_stage first ({stage1})")
        out[arm] = train_eval(cache, runs, arm, arm_args(arm, epochs, stage1), epochs, seed)
        out[arm]["_budget"] = budget(arm, epochs)
        if arm == "two_stage":
            shutil.rmtree(stage1, ignore_errors=True)
            shutil.copytree(runs / arm / "fold1" / "stage1" / "checkpoints" / "best", stage1)
    shutil.rmtree(runs, ignore_errors=True)
    return out


def table4_part(seed: int, work: Path, epochs: int, clips_per_class: int) -> dict:
    """The Table 4 grid on one seed, two-stage: full-modality scores, stage budgets, carried."""
    cache, _ = synthetic_cache(work / f"cache{seed}", seed, clips_per_class)
    runs, out = work / f"runs{seed}", {}
    for L, N, k in TABLE4:
        grid = sets({"pool.length": L // 2, "inherent_length": L // 2, "pool.size": N, "pool.top_k": k})
        r = train_eval(cache, runs, f"t4-{L}-{N}-{k}", ["--stage", "both", *grid], epochs, seed, top_k=k)
        out[f"{L}/{N}/{k}"] = {"V+A+T": r["V+A+T"], "_stages": {s: {k2: v for k2, v in st.items() if k2 != "curve"}
                                                               for s, st in r["_stages"].items()},
                               "_transfer": r.get("_transfer"), "_seconds": r["_seconds"]}
        shutil.rmtree(runs / f"t4-{L}-{N}-{k}", ignore_errors=True)
    shutil.rmtree(runs, ignore_errors=True)
    return {"table4": out}


def library_commit() -> str:
    """The commit the library was at (with "+changes" when its tree differs from it)."""
    root = HERE.parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "umbenet_cli"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def library_commits(heads: set[str]) -> str:
    """The library each part ran: for each recorded HEAD, the last commit that changed umbenet_cli
    (a part records the checkout's HEAD, which moves with benchmark-only commits too)."""
    out = set()
    for head in heads:
        base, _, dirty = head.partition("+")
        try:
            lib = subprocess.run(["git", "log", "-1", "--format=%h", base, "--", "umbenet_cli"], cwd=HERE.parents[1],
                                 capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            lib = ""
        out.add((lib or base) + ("+changes" if dirty else ""))
    return ", ".join(sorted(out))


def merge(parts_dir: Path, epochs: int, cpc: int) -> dict:
    """results.json's content from every part in ``parts_dir`` (a seed part and its later ``--arms``
    parts are combined; tuning seeds are refused)."""
    per_seed: dict[int, dict] = {}
    for f in sorted(parts_dir.glob("seed*.json")):
        p = json.loads(f.read_text())
        s = p["_seed"]
        if s in TUNING_SEEDS:
            raise SystemExit(f"{f}: seed {s} is a tuning seed and is never reported; delete the part")
        per_seed.setdefault(s, {"_parts": []})
        per_seed[s].update({k: v for k, v in p.items() if not k.startswith("_")})
        per_seed[s]["_parts"].append({k: p[k] for k in ("_seconds", "_started", "_ended", "_commit")})
    for f in sorted(parts_dir.glob("selection-*.json")):
        p = json.loads(f.read_text())
        if p["_seed"] in per_seed:
            per_seed[p["_seed"]]["selection"] = p["selection"]
    table4 = {json.loads(f.read_text())["_seed"]: json.loads(f.read_text()) for f in sorted(parts_dir.glob("table4*.json"))}
    timing = ("_seconds", "_started", "_ended", "_commit")
    parts = [q for p in per_seed.values() for q in p["_parts"]] + [{k: p[k] for k in timing} for p in table4.values()] + [
        {k: p[k] for k in timing} for f in sorted(parts_dir.glob("selection-*.json")) if (p := json.loads(f.read_text()))
        and p["_seed"] in per_seed]
    seeds = sorted(per_seed)
    return {"command": "bash benchmarks/controlled/run_all.sh (every --part as its own process, two at a time, "
                       "then python benchmarks/controlled/run_controlled.py --merge)",
            "commit": library_commits({p["_commit"] for p in parts}), "date": time.strftime("%Y-%m-%d"),
            "heads": sorted({p["_commit"] for p in parts}),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (CPU only)",
            "seeds": seeds, "table4_seeds": sorted(table4), "epochs": epochs, "clips_per_class": cpc,
            "signal": SIGNAL, "missing": MISSING, "settings": SETTINGS, "authors_code": AUTHORS_CODE, "remedy": REMEDY,
            "arms": {a: {"args": ARMS[a][0], "budget": budget(a, epochs)} for a in ARMS},
            "per_seed": [per_seed[s] for s in seeds], "table4": {str(s): table4[s]["table4"] for s in sorted(table4)},
            "seconds": {"process": sum(p["_seconds"] for p in parts), "parts": len(parts),
                        "wall": max(p["_ended"] for p in parts) - min(p["_started"] for p in parts)},
            "seconds_per_arm": {a: float(np.mean([p[a]["_seconds"] for p in per_seed.values() if a in p]))
                                for a in ARMS if any(a in p for p in per_seed.values())}}


def main_cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=EPOCHS, help="E, epochs per stage (one-stage arms: 2E)")
    ap.add_argument("--part", help="'seed:N' (the arms of seed N), 'table4:N' (the Table 4 grid on seed N) or "
                                   "'selection:N' (the prompts selected before and after seed N's stage 1), written to "
                                   "--parts-dir; then --merge")
    ap.add_argument("--arms", help="with --part seed:N, only these arms (comma-separated; the part file gets a suffix)")
    ap.add_argument("--merge", action="store_true", help="combine the parts in --parts-dir into results.json and RESULTS.md")
    ap.add_argument("--parts-dir", type=Path, default=HERE / ".parts")
    ap.add_argument("--clips-per-class", type=int, default=CLIPS_PER_CLASS)
    ap.add_argument("--out", type=Path, default=HERE, help="where --merge writes results.json and RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(1)  # 2 cores, two parts at a time: intra-op threads only add contention
    if args.merge:
        results = merge(args.parts_dir, args.epochs, args.clips_per_class)
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
        write_markdown(results, args.out / "RESULTS.md")
        print(f"wrote {args.out / 'results.json'} and RESULTS.md: seeds {results['seeds']}, Table 4 seeds {results['table4_seeds']}")
        return
    if not args.part:
        ap.error("name a --part (seed:N or table4:N) or --merge")
    kind, seed = args.part.split(":")
    seed = int(seed)
    t0, started, commit = time.perf_counter(), time.time(), library_commit()
    work = Path(tempfile.mkdtemp(prefix="umbenet-controlled-"))
    args.parts_dir.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "table4":
            res, name = table4_part(seed, work, args.epochs, args.clips_per_class), f"table4-{seed}"
        elif kind == "selection":
            res = selection_part(seed, work, args.epochs, args.clips_per_class, args.parts_dir / "checkpoints")
            name = f"selection-{seed}"
        elif kind == "seed":
            arms = args.arms.split(",") if args.arms else list(ARMS)
            unknown = sorted(set(arms) - set(ARMS))
            if unknown:
                ap.error(f"unknown arms {unknown}; the arms are {list(ARMS)}")
            res = seed_part(seed, work, args.epochs, args.clips_per_class, arms, args.parts_dir / "checkpoints")
            name = f"seed{seed}" + (f"-{'+'.join(arms)}" if args.arms else "")
        else:
            ap.error(f"--part {args.part!r}: use seed:N, table4:N or selection:N")
        res |= {"_seed": seed, "_seconds": time.perf_counter() - t0, "_started": started, "_ended": time.time(),
                "_commit": commit}
        (args.parts_dir / f"{name}.json").write_text(json.dumps(res, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main_cli()
