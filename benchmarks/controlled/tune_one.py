"""One short tuning run of the controlled benchmark on a seed that is not reported (default 10):
train + eval with the benchmark's settings plus extra CLI arguments / `key=value` overrides, print
the test WAR per subset and each stage's best validation UAR. Seeds 10 and 11 are the tuning seeds
(run_controlled.TUNING_SEEDS). How the benchmark's settings were chosen (with its settings of the time):

    .venv/bin/python benchmarks/controlled/tune_one.py --name base -- --stage both
    .venv/bin/python benchmarks/controlled/tune_one.py --name wd -- --stage both optim.optimizer=adamw optim.weight_decay=0.1
    .venv/bin/python benchmarks/controlled/tune_one.py --name a -- --stage both --modalities audio audio.conv_layers=6
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))
import run_controlled as rc  # noqa: E402


torch.set_num_threads(1)
ap = argparse.ArgumentParser()
ap.add_argument("--cpc", type=int, default=rc.CLIPS_PER_CLASS)
ap.add_argument("--seed", type=int, default=10)
ap.add_argument("--epochs", type=int, default=20)
ap.add_argument("--name", default="run")
ap.add_argument("rest", nargs="*")
a = ap.parse_args()
work = Path(tempfile.mkdtemp(prefix="umbenet-tune-"))
cache, _ = rc.synthetic_cache(work / "cache", a.seed, a.cpc)
extra = [x for r in a.rest for x in ((["--set", r]) if "=" in r and not r.startswith("--") else [r])]
t0 = time.time()
res = rc.train_eval(cache, work / "runs", a.name, extra, a.epochs, a.seed)  # later --set values override earlier ones
info = {}
for f in sorted((work / "runs" / a.name / "fold1").glob("*/result.json")):
    r = json.loads(f.read_text())
    info[r["stage"]] = {"epochs": r["epochs"], "best_epoch": r["best_epoch"], "best_val_uar": round(100 * r["best_val_uar"], 1)}
print(a.name, {k: round(100 * v["war"], 1) for k, v in res.items() if not k.startswith("_")}, info, f"{time.time() - t0:.0f}s")
shutil.rmtree(work, ignore_errors=True)
