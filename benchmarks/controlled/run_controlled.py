"""Controlled learning benchmark: UMBEnet on synthetic caches whose Bayes-optimal scores are known.

    .venv/bin/python benchmarks/controlled/run_controlled.py            # 5 seeds + the sweep on 3
    .venv/bin/python benchmarks/controlled/run_controlled.py --quick    # 1 seed, short, no sweep
    # the same as parallel processes (how RESULTS.md was made), then merged:
    .venv/bin/python benchmarks/controlled/run_controlled.py --part seed:0   # ... seed:4, sweep:0 ... sweep:2
    .venv/bin/python benchmarks/controlled/run_controlled.py --merge
    # 4x the data: the same with --clips-per-class 480 (results-480-clips.json, RESULTS-480-clips.md)
    bash benchmarks/controlled/run_all.sh                                # all of it, two processes at a time

Each seed writes a MAFW-like synthetic cache (8 classes incl. neutral; video > text > audio in
class information; neutral clips have no text; a few clips lack audio or text) and, on fold 1:
- the full model, two-stage and one-stage, evaluated with every modality subset (Table 3's
  "missing-modality inference" rows),
- models trained on each subset alone (Table 3's upper rows),
- head ablations: the prompt pool switched off (class embeddings from the text tower with the
  inherent prompts only, no P'), and learned class vectors in place of the text tower
  (``classifier=vectors``); a plain late-fusion baseline,
- the two-stage model with a trained CLIP's logit scale (100) on the tiny tower,
- what each model's stage 2 carried from stage 1, and its class embeddings' geometry (head.json),
- on seeds 0-2, the paper's Table 4 sweep over prompt length, pool size and top-k.
The Bayes-optimal classifier (true generator parameters) is scored on the same test clips.
Results: results.json and RESULTS.md beside this script (the numbers are not tests: CI never runs this).
"""
from __future__ import annotations

import argparse
import json
import math
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

from late_fusion import predict as lf_predict, train_late_fusion  # noqa: E402
from plugin_reference import plugin_log_likelihoods  # noqa: E402
from write_results import write_markdown  # noqa: E402

from umbenet_cli.cli import main  # noqa: E402
from umbenet_cli.data.cache_read import read_features  # noqa: E402
from umbenet_cli.data.synthetic import (SyntheticSpec, bayes_log_likelihoods, bayes_predictions,  # noqa: E402
                                        write_synthetic_cache)
from umbenet_cli.evaluation.metrics import confusion_matrix, uar, war  # noqa: E402
from umbenet_cli.model import load_backbone  # noqa: E402
from umbenet_cli.model.config import TINY_BACKBONE, UMBEnetConfig  # noqa: E402
from umbenet_cli.model.tiny_backbone import ensure_tiny_backbone  # noqa: E402
from umbenet_cli.training.data import make_splits  # noqa: E402

CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt")
SIGNAL = {"video": 1.6, "audio": 0.8, "text": 1.1}  # Bayes: V ~57%, T ~41%, A ~31%
MISSING = {"video": 0.0, "audio": 0.03, "text": 0.05}
CLIPS_PER_CLASS = 120
SUBSETS = ("V", "A", "T", "V+T", "V+A", "V+A+T", "A+T")
TRAINED_SUBSETS = {"V": "video", "A": "audio", "T": "text", "V+T": "video,text", "V+A": "video,audio"}
# The full model's arms on every seed (training arguments beside the shared settings).
ARMS = {
    "two_stage": ["--stage", "both"],
    "one_stage": ["--stage", "one"],
    "no_pool": ["--stage", "both", "--set", "pool.enabled=false"],
    # Head ablation: one learned vector per class instead of class prompts through the text tower
    # (same fused feature, same cosine, same logit scale).
    "class_vectors": ["--stage", "both", "--set", "pool.enabled=false", "--set", "classifier=vectors"],
}
# The tiny random CLIP keeps CLIP's initial logit scale, 1/0.07 = 14.3; a trained CLIP's is 100.
# This arm is the two-stage model on a copy of the tiny backbone with the trained value (same
# weights otherwise, same fingerprint): how much of the head's cost is the temperature alone.
TRAINED_CLIP_SCALE = 100.0
SWEEP_SEEDS = (0, 1, 2)
TABLE4 = [(32, 8, 5), (32, 16, 5), (32, 32, 5), (64, 8, 3), (64, 8, 5), (64, 16, 3), (64, 16, 5), (64, 32, 3), (64, 32, 5)]


def model_overrides(epochs: int) -> list[str]:
    sets = {"audio.input": "logmel", "audio.seconds": 1.0, "audio.channels": 32, "audio.hidden": 64,
            "optim.max_epochs": epochs,
            "optim.stop_train_accuracy": 1.0, "optim.batch_size": 16, "pool.size": 8, "pool.length": 8,
            "pool.top_k": 3, "temporal.dropout": 0.1, "fusion.dropout": 0.1}
    return [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]


def train_eval(cache: Path, runs: Path, name: str, extra: list[str], epochs: int) -> dict:
    """Train and evaluate one model on fold 1: test UAR/WAR per subset, and under ``_``-keys what
    stage 2 carried (init.json), each stage's epochs and best epoch, and the head diagnostics."""
    t0 = time.perf_counter()
    args = ["train", "--cache", str(cache), "--runs-dir", str(runs), "--preset", "tiny", "--name", name,
            "--fold", "1", *model_overrides(epochs), *extra]
    assert main(args) == 0, f"training {name} failed"
    assert main(["eval", str(runs / name)]) == 0, f"evaluating {name} failed"
    fold = runs / name / "fold1"
    stage = next(s for s in ("stage2", "onestage", "stage1") if (fold / s / "eval").is_dir())
    res = json.loads((fold / stage / "eval" / "test" / "results.json").read_text())
    head = json.loads((fold / stage / "eval" / "test" / "head.json").read_text())
    init = fold / "stage2" / "init.json"
    carried = {k: v for k, v in json.loads(init.read_text()).items() if k in ("carried", "fresh")} if init.is_file() else None
    stages = {}
    for f in sorted(fold.glob("*/result.json")):
        r = json.loads(f.read_text())
        stages[r["stage"]] = {"epochs": r["epochs"], "best_epoch": r["best_epoch"], "best_val_uar": r["best_val_uar"]}
    keep = ("class_cosine", "logit_range", "across_clips", "logit_scale")
    heads = {w: {k: v for k, v in head[w].items() if k in keep} for w in ("initial", "trained")}
    for w in heads:
        heads[w]["class_cosine"] = {k: v for k, v in heads[w]["class_cosine"].items() if k != "matrix"}
    return ({e["name"]: {"uar": e["uar"], "war": e["war"]} for e in res["subsets"]}
            | {"_seconds": time.perf_counter() - t0, "_stage2_init": carried, "_stages": stages, "_head": heads})


def scaled_backbone(work: Path, scale: float) -> Path:
    """A copy of the tiny backbone with logit scale ``scale``; the cache accepts it (the fingerprint
    covers the projection weights, unchanged)."""
    from transformers import CLIPModel

    src, dst = ensure_tiny_backbone(), work / f"tiny-clip-scale{scale:g}"
    shutil.copytree(src, dst)
    clip = CLIPModel.from_pretrained(src)
    with torch.no_grad():
        clip.logit_scale.fill_(math.log(scale))
    clip.save_pretrained(dst)
    return dst


def synthetic_cache(folder: Path, seed: int, clips_per_class: int) -> tuple[Path, SyntheticSpec]:
    """The benchmark's MAFW-like synthetic cache of one seed, written to ``folder``, and its spec."""
    spec = SyntheticSpec(classes=CLASSES, clips_per_class=clips_per_class, audio_seconds=1.0, signal=SIGNAL,
                         missing=MISSING, seed=seed)
    return write_synthetic_cache(folder, spec, TINY_BACKBONE, load_backbone(TINY_BACKBONE).fingerprint()), spec


def scale_arm(seed: int, work: Path, epochs: int, clips_per_class: int) -> dict:
    """The two-stage model of seed ``seed`` with a trained CLIP's logit scale (a ``scale:N`` part)."""
    cache, _ = synthetic_cache(work / f"cache{seed}", seed, clips_per_class)
    backbone = scaled_backbone(work, TRAINED_CLIP_SCALE)
    return {"two_stage_scale100": train_eval(cache, work / f"runs{seed}", "two_stage_scale100",
                                             ["--stage", "both", "--set", f"backbone={backbone}"], epochs)}


def score(y: np.ndarray, p: np.ndarray, C: int) -> dict:
    keep = p >= 0
    cm = confusion_matrix(y[keep], p[keep], C)
    return {"uar": uar(cm), "war": war(cm)}


def one_seed(seed: int, work: Path, epochs: int, sweep: bool, rows: bool = True, sweep_epochs: int | None = None,
             clips_per_class: int = CLIPS_PER_CLASS) -> dict:
    """The rows of one seed (every arm, the subset-trained models, late fusion, Bayes, plug-in),
    or with ``sweep`` (and ``rows=False``) the Table 4 sweep on that seed."""
    cache, spec = synthetic_cache(work / f"cache{seed}", seed, clips_per_class)
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
    runs = work / f"runs{seed}"
    if sweep:
        out["sweep"] = {}
        for L, N, k in TABLE4:
            r = train_eval(cache, runs, f"sweep-{L}-{N}-{k}", ["--stage", "both", "--set", f"pool.length={L}",
                                                               "--set", f"pool.size={N}", "--set", f"pool.top_k={k}"],
                           sweep_epochs or epochs)
            out["sweep"][f"{L}/{N}/{k}"] = r["V+A+T"] | {"stage2_init": r["_stage2_init"]}
    if not rows:
        shutil.rmtree(runs, ignore_errors=True)
        return out
    for arm, extra in ARMS.items():
        out[arm] = train_eval(cache, runs, arm, extra, epochs)
    out["trained_on_subset"] = {}
    for s, mods in TRAINED_SUBSETS.items():
        out["trained_on_subset"][s] = train_eval(cache, runs, f"sub-{s}", ["--stage", "both", "--modalities", mods], epochs)[s]
    out["trained_on_subset"]["V+A+T"] = out["two_stage"]["V+A+T"]
    cfg = UMBEnetConfig.preset("tiny").override({k: v for k, v in (x.split("=") for x in model_overrides(epochs)[1::2])}
                                                | {"classes": list(CLASSES)})
    lf = train_late_fusion(cfg, 32, table, splits, table.presence, seed, epochs)
    out["late_fusion"] = {}
    for s in SUBSETS:
        mask = np.array([m in s for m in "VAT"])
        out["late_fusion"][s] = score(y, lf_predict(lf, table, test, table.presence[test] & mask[None]), len(CLASSES))
    shutil.rmtree(runs, ignore_errors=True)
    return out


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


def main_cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 seed, 6 epochs, no sweep")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--sweep-epochs", type=int, default=20, help="epochs per stage of the Table 4 sweep")
    ap.add_argument("--part", help="run only this part and write it to --parts-dir: 'seed:N' (the rows of seed N) "
                                   "'sweep:N' (the Table 4 sweep on seed N) or 'scale:N' (seed N's two-stage model with a "
                                   "trained CLIP's logit scale); parallel processes, then --merge")
    ap.add_argument("--merge", action="store_true", help="combine the parts in --parts-dir into results.json and RESULTS.md")
    ap.add_argument("--parts-dir", type=Path, default=None, help="default: .parts (.parts-<N>-clips with --clips-per-class N)")
    ap.add_argument("--clips-per-class", type=int, default=CLIPS_PER_CLASS,
                    help="clips per class in each synthetic cache; other than the default, results go to "
                         "results-<N>-clips.json / RESULTS-<N>-clips.md (how the gaps change with more data)")
    args = ap.parse_args()
    cpc = args.clips_per_class
    scaled = "" if cpc == CLIPS_PER_CLASS else f"-{cpc}-clips"
    args.parts_dir = args.parts_dir or HERE / f".parts{scaled}"
    # One thread: the machine has 2 cores and intra-op threads only add contention at these sizes.
    torch.set_num_threads(1)
    seeds = [0] if args.quick else list(range(args.seeds))
    epochs = 6 if args.quick else args.epochs
    t0, started, commit = time.perf_counter(), time.time(), library_commit()  # the library the part starts with
    if args.part:
        kind, seed = args.part.split(":")
        work = Path(tempfile.mkdtemp(prefix="umbenet-controlled-"))
        args.parts_dir.mkdir(parents=True, exist_ok=True)
        if kind == "sweep":
            res = one_seed(int(seed), work, epochs, sweep=True, rows=False, sweep_epochs=args.sweep_epochs,
                           clips_per_class=cpc)
        elif kind == "scale":
            res = scale_arm(int(seed), work, epochs, cpc)
        else:
            res = one_seed(int(seed), work, epochs, sweep=False, clips_per_class=cpc)
        res |= {"_seconds": time.perf_counter() - t0, "_started": started, "_ended": time.time(),
                "_commit": commit}
        (args.parts_dir / f"{kind}{seed}.json").write_text(json.dumps(res, indent=2))
        shutil.rmtree(work, ignore_errors=True)
        return
    if args.merge:
        per_seed = [json.loads((args.parts_dir / f"seed{s}.json").read_text()) for s in seeds]
        for s, p in zip(seeds, per_seed):  # the trained-CLIP logit scale arm, where it was run
            f = args.parts_dir / f"scale{s}.json"
            if f.is_file():
                p["two_stage_scale100"] = json.loads(f.read_text())["two_stage_scale100"]
        sweeps = {int(f.stem[5:]): json.loads(f.read_text()) for f in sorted(args.parts_dir.glob("sweep*.json"))}
        parts = [json.loads(f.read_text()) for f in sorted(args.parts_dir.glob("*.json"))]
        seconds = sum(p["_seconds"] for p in parts)
        wall = max(p["_ended"] for p in parts) - min(p["_started"] for p in parts)
        note = (f"{len(parts)} parts as parallel processes, two at a time: {seconds / 60:.0f} min of process time, "
                f"{wall / 60:.0f} min from the first start to the last end")
        commits = sorted({p["_commit"] for p in parts})
    else:
        work = Path(tempfile.mkdtemp(prefix="umbenet-controlled-"))
        per_seed = [one_seed(s, work, epochs, sweep=False, clips_per_class=cpc) | scale_arm(s, work / "scale", epochs, cpc)
                    for s in seeds]
        sweeps = {} if args.quick else {s: one_seed(s, work, epochs, sweep=True, rows=False, sweep_epochs=args.sweep_epochs,
                                                    clips_per_class=cpc) for s in SWEEP_SEEDS}
        shutil.rmtree(work, ignore_errors=True)
        seconds = time.perf_counter() - t0
        note, commits = "one process", [commit]
    command = ("python benchmarks/controlled/run_controlled.py" + (" --quick" if args.quick else "")
               + (f" --clips-per-class {cpc}" if scaled else ""))
    if args.merge:
        sweep_part = f", --part sweep:N for N in {sorted(sweeps)}" if sweeps else ""
        if (args.parts_dir / "scale0.json").is_file():
            sweep_part += f", --part scale:N for N in {seeds}"
        command = (f"{command} --part seed:N for N in {seeds}{sweep_part} (separate processes, two at a "
                   f"time), then {command} --merge" + (f" --seeds {len(seeds)}" if len(seeds) != 5 else ""))
    results = {"command": command, "commit": ", ".join(commits), "date": time.strftime("%Y-%m-%d"),
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (CPU only)",
               "seeds": seeds, "epochs": epochs, "sweep_epochs": args.sweep_epochs, "clips_per_class": cpc,
               "signal": SIGNAL, "missing": MISSING, "settings": model_overrides(epochs)[1::2], "arms": ARMS,
               "per_seed": per_seed, "sweep": {str(k): v["sweep"] for k, v in sweeps.items()},
               "seconds": seconds, "seconds_note": note}
    suffix = "-quick" if args.quick else scaled
    (HERE / f"results{suffix}.json").write_text(json.dumps(results, indent=2))
    write_markdown(results, HERE / f"RESULTS{suffix}.md")
    print((HERE / f"RESULTS{suffix}.md").read_text())


if __name__ == "__main__":
    main_cli()
