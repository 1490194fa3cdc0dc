"""The demo's second part: the tiny model learns a synthetic problem whose best possible score is known.

    .venv/bin/python benchmarks/controlled/demo_learning.py --out runs/demo/learning

A small synthetic cache from the controlled benchmark's generator (``umbenet_cli.data.synthetic``:
6 classes including neutral, video carries most class information, then text, then audio; neutral
clips have no text, a few clips lack audio or text) is written, the tiny model is trained on fold 1
through both stages (a few epochs each), evaluated with every modality subset, and each subset's
UAR/WAR is printed beside chance and the Bayes-optimal classifier's (the generator's true
parameters, same test clips). It is not emotion recognition: it shows that the method learns, and
what a missing modality costs, on data where the answer is known.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from umbenet_cli.cli import main  # noqa: E402
from umbenet_cli.data.cache_read import read_features  # noqa: E402
from umbenet_cli.data.synthetic import SyntheticSpec, bayes_log_likelihoods, bayes_predictions, write_synthetic_cache  # noqa: E402
from umbenet_cli.evaluation.metrics import confusion_matrix, uar, war  # noqa: E402
from umbenet_cli.model import load_backbone  # noqa: E402
from umbenet_cli.model.config import TINY_BACKBONE  # noqa: E402
from umbenet_cli.training.data import make_splits  # noqa: E402

CLASSES = ("anger", "disgust", "happiness", "neutral", "sadness", "surprise")
SIGNAL = {"video": 1.6, "audio": 0.8, "text": 1.1}  # the controlled benchmark's, Bayes V > T > A
MISSING = {"video": 0.0, "audio": 0.03, "text": 0.05}
SETS = {"audio.input": "logmel", "audio.seconds": 1.0, "audio.channels": 32, "audio.hidden": 64,
        "optim.stop_train_accuracy": 1.0, "optim.batch_size": 16, "pool.size": 8, "pool.length": 8,
        "pool.top_k": 3, "temporal.dropout": 0.1, "fusion.dropout": 0.1}


def run_demo(out: Path, clips_per_class: int = 60, epochs: int = 4, seed: int = 0,
             console: Console | None = None) -> dict:
    """Write the cache, train, evaluate; returns {subset: {n, uar, war, chance, bayes_uar, bayes_war}}."""
    console = console or Console()
    out = Path(out)
    spec = SyntheticSpec(classes=CLASSES, clips_per_class=clips_per_class, audio_seconds=1.0, signal=SIGNAL,
                         missing=MISSING, seed=seed)
    cache = out / "cache"
    if not (cache / "features").is_dir():
        write_synthetic_cache(cache, spec, TINY_BACKBONE, load_backbone(TINY_BACKBONE).fingerprint())
    runs, name = out / "runs", "synthetic-tiny"
    sets = [x for k, v in {**SETS, "optim.max_epochs": epochs}.items() for x in ("--set", f"{k}={v}")]
    t0 = time.perf_counter()
    log_file = out / "learning.log"
    console.print(f"training the tiny model on a synthetic cache ({len(CLASSES)} classes, {clips_per_class} clips "
                  f"each, {epochs} epochs per stage); its output goes to {log_file}", highlight=False)
    if not (runs / name / "run.json").is_file():
        train = ["train", "--cache", str(cache), "--runs-dir", str(runs), "--name", name, "--preset", "tiny",
                 "--fold", "1", "--stage", "both", "--seed", str(seed), *sets]
    else:
        train = ["train", "--runs-dir", str(runs), "--name", name, "--resume"]
    with open(log_file, "a") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        ok = main(train) == 0 and main(["eval", str(runs / name)]) == 0
    if not ok:
        raise SystemExit(f"demo_learning: training or evaluating {runs / name} failed; see {log_file}")
    seconds = time.perf_counter() - t0
    res = json.loads((runs / name / "fold1" / "stage2" / "eval" / "test" / "results.json").read_text())
    table = read_features(cache)
    test = make_splits(table, 1, 0.1, seed).test
    y = table.labels[test].astype(np.int64)
    ll = bayes_log_likelihoods(table, spec)
    C = len(CLASSES)
    rows = {}
    for e in res["subsets"]:
        mask = np.array([m in e["name"].split("+") for m in "VAT"])
        p = bayes_predictions(ll[test], table.presence[test], mask)
        keep = p >= 0
        cm = confusion_matrix(y[keep], p[keep], C)
        counts = np.bincount(y[keep], minlength=C)
        rows[e["name"]] = {"n": e["n"], "uar": e["uar"], "war": e["war"], "chance_uar": 1.0 / C,
                           "chance_war": float(counts.max() / counts.sum()), "bayes_uar": uar(cm), "bayes_war": war(cm)}
    result = {"what": "tiny UMBEnet on a synthetic cache with a known answer (not emotion recognition)",
              "classes": list(CLASSES), "clips": len(table), "test_clips": int(len(test)), "epochs_per_stage": epochs,
              "seconds_train_eval": seconds, "units": "fractions (printed as percent, 1 decimal)", "subsets": rows}
    (out / "learning.json").write_text(json.dumps(result, indent=2))
    console.print(learning_table(result))
    console.print(f"[dim]Chance: UAR of a uniform guess (1/{C}); WAR of always guessing the commonest test class. "
                  f"Bayes-optimal: the generator's true class likelihoods, the best any model can score on these "
                  f"clips. Trained {epochs} epochs per stage on {len(table) - len(test)} clips in {seconds:.0f} s; "
                  f"a longer run closes more of the gap (benchmarks/controlled/RESULTS.md). Saved: {out / 'learning.json'}[/]",
                  highlight=False)
    return result


def learning_table(result: dict) -> Table:
    t = Table(title=f"Synthetic data with a known answer, {len(result['classes'])} classes (NOT emotion recognition): "
                    f"does the method learn?")
    for col in ("subset", "test clips", "UAR %", "chance", "Bayes", "WAR %", "chance", "Bayes"):
        t.add_column(col, justify="left" if col == "subset" else "right", overflow="fold")
    for name, r in result["subsets"].items():
        t.add_row(name, str(r["n"]), *(f"{100 * r[k]:.1f}" for k in ("uar", "chance_uar", "bayes_uar",
                                                                     "war", "chance_war", "bayes_war")))
    return t


def main_cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/demo/learning")
    ap.add_argument("--clips-per-class", type=int, default=60)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per stage")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    run_demo(Path(a.out), a.clips_per_class, a.epochs, a.seed)


if __name__ == "__main__":
    main_cli()
