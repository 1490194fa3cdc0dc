"""Controlled learning benchmark: UMBEnet on synthetic caches whose Bayes-optimal scores are known.

    .venv/bin/python benchmarks/controlled/run_controlled.py            # 3 seeds + the pool sweep
    .venv/bin/python benchmarks/controlled/run_controlled.py --quick    # 1 seed, short, no sweep
    # the same as parallel processes (how RESULTS.md was made), then merged:
    .venv/bin/python benchmarks/controlled/run_controlled.py --part seed:0   # also seed:1, seed:2, sweep
    .venv/bin/python benchmarks/controlled/run_controlled.py --merge

Each seed writes a MAFW-like synthetic cache (8 classes incl. neutral; video > text > audio in
class information; neutral clips have no text; a few clips lack audio or text) and, on fold 1:
- the full model, two-stage and one-stage, evaluated with every modality subset (Table 3's
  "missing-modality inference" rows),
- models trained on each subset alone (Table 3's upper rows),
- the full model with the prompt pool switched off, and a plain late-fusion baseline,
- on seed 0, the paper's Table 4 sweep over prompt length, pool size and top-k.
The Bayes-optimal classifier (true generator parameters) is scored on the same test clips.
Results: results.json and RESULTS.md beside this script (the numbers are not tests: CI never runs this).
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
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

from umbenet_cli.cli import main  # noqa: E402
from umbenet_cli.data.cache_read import read_features  # noqa: E402
from umbenet_cli.data.synthetic import (SyntheticSpec, bayes_log_likelihoods, bayes_predictions,  # noqa: E402
                                        write_synthetic_cache)
from umbenet_cli.evaluation.metrics import confusion_matrix, mean_std, uar, war  # noqa: E402
from umbenet_cli.model import load_backbone  # noqa: E402
from umbenet_cli.model.config import TINY_BACKBONE, UMBEnetConfig  # noqa: E402
from umbenet_cli.training.data import make_splits  # noqa: E402

CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt")
SIGNAL = {"video": 1.6, "audio": 0.8, "text": 1.1}  # Bayes: V ~57%, T ~41%, A ~31%
MISSING = {"video": 0.0, "audio": 0.03, "text": 0.05}
CLIPS_PER_CLASS = 120
SUBSETS = ("V", "A", "T", "V+T", "V+A", "V+A+T", "A+T")
TRAINED_SUBSETS = {"V": "video", "A": "audio", "T": "text", "V+T": "video,text", "V+A": "video,audio"}
TABLE4 = [(32, 8, 5), (32, 16, 5), (32, 32, 5), (64, 8, 3), (64, 8, 5), (64, 16, 3), (64, 16, 5), (64, 32, 3), (64, 32, 5)]


def model_overrides(epochs: int) -> list[str]:
    sets = {"audio.input": "logmel", "audio.seconds": 1.0, "audio.channels": 32, "audio.hidden": 64,
            "optim.max_epochs": epochs,
            "optim.stop_train_accuracy": 1.0, "optim.batch_size": 16, "pool.size": 8, "pool.length": 8,
            "pool.top_k": 3, "temporal.dropout": 0.1, "fusion.dropout": 0.1}
    return [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]


def train_eval(cache: Path, runs: Path, name: str, extra: list[str], epochs: int) -> dict:
    t0 = time.perf_counter()
    args = ["train", "--cache", str(cache), "--runs-dir", str(runs), "--preset", "tiny", "--name", name,
            "--fold", "1", *model_overrides(epochs), *extra]
    assert main(args) == 0, f"training {name} failed"
    assert main(["eval", str(runs / name)]) == 0, f"evaluating {name} failed"
    stage = next(s for s in ("stage2", "onestage", "stage1") if (runs / name / "fold1" / s / "eval").is_dir())
    res = json.loads((runs / name / "fold1" / stage / "eval" / "test" / "results.json").read_text())
    return {e["name"]: {"uar": e["uar"], "war": e["war"]} for e in res["subsets"]} | {"_seconds": time.perf_counter() - t0}


def score(y: np.ndarray, p: np.ndarray, C: int) -> dict:
    keep = p >= 0
    cm = confusion_matrix(y[keep], p[keep], C)
    return {"uar": uar(cm), "war": war(cm)}


def one_seed(seed: int, work: Path, epochs: int, sweep: bool, rows: bool = True, sweep_epochs: int | None = None,
             clips_per_class: int = CLIPS_PER_CLASS) -> dict:
    spec = SyntheticSpec(classes=CLASSES, clips_per_class=clips_per_class, audio_seconds=1.0, signal=SIGNAL, missing=MISSING, seed=seed)
    cache = write_synthetic_cache(work / f"cache{seed}", spec, TINY_BACKBONE, load_backbone(TINY_BACKBONE).fingerprint())
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
            out["sweep"][f"{L}/{N}/{k}"] = r["V+A+T"]
    if not rows:
        shutil.rmtree(runs, ignore_errors=True)
        return out
    out["two_stage"] = train_eval(cache, runs, "full2", ["--stage", "both"], epochs)
    out["one_stage"] = train_eval(cache, runs, "full1", ["--stage", "one"], epochs)
    out["no_pool"] = train_eval(cache, runs, "nopool", ["--stage", "both", "--set", "pool.enabled=false"], epochs)
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


def aggregate(per_seed: list[dict], key: str, subset: str, metric: str) -> tuple[float, float]:
    return mean_std([100 * s[key][subset][metric] for s in per_seed])


def write_markdown(results: dict, path: Path) -> None:
    seeds = results["seeds"]
    ps = results["per_seed"]

    def cell(key, s, m="war"):
        if not all(s in p.get(key, {}) for p in ps):
            return "—"
        mean, std = aggregate(ps, key, s, m)
        return f"{mean:.1f} ± {std:.1f}"

    def both(key, s):
        return f"{cell(key, s, 'uar')} ({cell(key, s, 'war')})"

    lines = [f"# Controlled learning benchmark\n", f"Command: `{results['command']}`  ",
             f"Machine: {results['machine']}; {len(seeds)} seed(s) {seeds}, fold 1 of 5, {results['clips_per_class']} clips "
             f"per class, {results['epochs']} epochs max per stage (Table 4 sweep: {results.get('sweep_epochs')}), "
             f"wall time {results['seconds'] / 60:.0f} min ({results.get('seconds_note', '')}).  ",
             f"Model settings (`--set`, preset `tiny`): {', '.join(results['settings'])}.\n",
             "Synthetic MAFW-like caches (8 classes, neutral without text, 3% of clips without audio, 5% without text); "
             f"signal-to-noise per modality {results['signal']} so that video > text > audio alone. Scores are % on the "
             "test fold (mean ± sample std over seeds); clips that have none of a subset's modalities are left out of it. "
             "Bayes-optimal: the generator's true parameters. Plug-in: the same classifier with class means estimated "
             "from the training clips UMBEnet sees (audio from band energies measured on the waveform).\n",
             "## Table 3 layout: UAR (WAR)\n",
             "| subset | Bayes-optimal | plug-in (same clips) | trained on the subset | full model, two-stage | "
             "full model, one-stage | pool off | late fusion |",
             "|---|---|---|---|---|---|---|---|"]
    for s in ("V", "A", "T", "V+T", "V+A", "A+T", "V+A+T"):
        lines.append(f"| {s} | {both('bayes', s)} | {both('plugin', s)} | {both('trained_on_subset', s)} | "
                     f"{both('two_stage', s)} | {both('one_stage', s)} | {both('no_pool', s)} | {both('late_fusion', s)} |")
    lines += ["", "## Against the goals (WAR)\n"]
    full = aggregate(ps, "two_stage", "V+A+T", "war")[0]
    bayes, plug = aggregate(ps, "bayes", "V+A+T", "war")[0], aggregate(ps, "plugin", "V+A+T", "war")[0]
    lines.append(f"- Full modality: two-stage {full:.1f} against Bayes-optimal {bayes:.1f}: gap {bayes - full:.1f} points "
                 f"(goal: within 2) — {'met' if bayes - full <= 2 else 'missed'}; plug-in on the same clips {plug:.1f} "
                 f"(Bayes − plug-in {bayes - plug:.1f}: sample size; plug-in − UMBEnet {plug - full:.1f}: method).")
    for s in ("V", "A", "T", "V+T", "V+A"):
        a, b = aggregate(ps, "two_stage", s, "war")[0], aggregate(ps, "trained_on_subset", s, "war")[0]
        lines.append(f"- {s}: full model with the others missing {a:.1f} vs trained on {s} alone {b:.1f}: "
                     f"{a - b:+.1f} points (goal: no more than 2 below) — {'met' if a - b >= -2 else 'missed'}; "
                     f"plug-in {aggregate(ps, 'plugin', s, 'war')[0]:.1f}, Bayes {aggregate(ps, 'bayes', s, 'war')[0]:.1f}.")
    if "sweep" in ps[0]:
        lines += ["", f"## Table 4 layout (seed 0, {results.get('sweep_epochs')} epochs per stage): full-modality UAR / WAR\n",
                  "| length | size | top-k | UAR | WAR |", "|---|---|---|---|---|"]
        for key, r in ps[0]["sweep"].items():
            L, N, k = key.split("/")
            lines.append(f"| {L} | {N} | {k} | {100 * r['uar']:.1f} | {100 * r['war']:.1f} |")
    path.write_text("\n".join(lines) + "\n")


def main_cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 seed, 6 epochs, no sweep")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--sweep-epochs", type=int, default=10, help="epochs per stage of the Table 4 sweep (seed 0)")
    ap.add_argument("--part", help="run only this part and write it to --parts-dir: 'seed:N' (the rows of seed N) "
                                   "or 'sweep' (the Table 4 sweep on seed 0); parallel processes, then --merge")
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
    t0 = time.perf_counter()
    if args.part:
        work = Path(tempfile.mkdtemp(prefix="umbenet-controlled-"))
        args.parts_dir.mkdir(parents=True, exist_ok=True)
        if args.part == "sweep":
            res = one_seed(0, work, epochs, sweep=True, rows=False, sweep_epochs=args.sweep_epochs, clips_per_class=cpc)
        else:
            res = one_seed(int(args.part.split(":")[1]), work, epochs, sweep=False, clips_per_class=cpc)
        res["_seconds"] = time.perf_counter() - t0
        (args.parts_dir / f"{args.part.replace(':', '')}.json").write_text(json.dumps(res, indent=2))
        shutil.rmtree(work, ignore_errors=True)
        return
    if args.merge:
        per_seed = [json.loads((args.parts_dir / f"seed{s}.json").read_text()) for s in seeds]
        sweep_file = args.parts_dir / "sweep.json"
        if sweep_file.exists():
            per_seed[0]["sweep"] = json.loads(sweep_file.read_text())["sweep"]
        parts = [json.loads(f.read_text())["_seconds"] for f in sorted(args.parts_dir.glob("*.json"))]
        seconds, note = sum(parts), f"{len(parts)} parts run as parallel processes, sum of their wall times"
    else:
        work = Path(tempfile.mkdtemp(prefix="umbenet-controlled-"))
        per_seed = [one_seed(s, work, epochs, sweep=(s == 0 and not args.quick), sweep_epochs=args.sweep_epochs,
                             clips_per_class=cpc) for s in seeds]
        shutil.rmtree(work, ignore_errors=True)
        seconds, note = time.perf_counter() - t0, "one process"
    command = ("python benchmarks/controlled/run_controlled.py" + (" --quick" if args.quick else "")
               + (f" --clips-per-class {cpc}" if scaled else "")
               + (f" --sweep-epochs {args.sweep_epochs}" if args.sweep_epochs != 10 else ""))
    if args.merge:
        sweep_part = " and --part sweep" if (args.parts_dir / "sweep.json").exists() else ""
        command = (f"{command} --part seed:N for N in {seeds}{sweep_part} (as separate processes, two at a "
                   f"time), then {command} --merge" + (f" --seeds {len(seeds)}" if len(seeds) != 3 else ""))
    results = {"command": command,
               "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores (CPU only)",
               "seeds": seeds, "epochs": epochs, "sweep_epochs": args.sweep_epochs, "clips_per_class": cpc,
               "signal": SIGNAL, "missing": MISSING, "settings": model_overrides(epochs)[1::2], "per_seed": per_seed, "seconds": seconds, "seconds_note": note}
    suffix = "-quick" if args.quick else scaled
    (HERE / f"results{suffix}.json").write_text(json.dumps(results, indent=2))
    write_markdown(results, HERE / f"RESULTS{suffix}.md")
    print((HERE / f"RESULTS{suffix}.md").read_text())


if __name__ == "__main__":
    main_cli()
