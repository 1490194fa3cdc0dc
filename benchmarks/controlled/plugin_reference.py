"""Reference: nearest-class-mean classifiers with means estimated from the training clips (the
same clips UMBEnet trains on). Shows how much of the gap to Bayes the sample size explains."""
import sys, numpy as np, tempfile
from pathlib import Path
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1])); sys.path.insert(0, str(HERE))
from run_controlled import CLASSES, SIGNAL, MISSING
from umbenet_cli.data.synthetic import SyntheticSpec, write_synthetic_cache
from umbenet_cli.data.cache_read import read_features
from umbenet_cli.training.data import make_splits
res = {k: [] for k in ["V","T","V+T"]}
for seed in range(3):
    d = tempfile.mkdtemp()
    spec = SyntheticSpec(classes=CLASSES, clips_per_class=120, audio_seconds=1.0, signal=SIGNAL, missing=MISSING, seed=seed)
    write_synthetic_cache(d, spec, "x", "y"); t = read_features(d)
    sp = make_splits(t, 1, 0.1, 0)
    xv = t.frame_emb.astype(np.float64).mean(1); xt = t.text_emb.astype(np.float64)
    def ll(x, has, rows_tr):
        mu = np.stack([x[rows_tr][(t.labels[rows_tr]==c) & has[rows_tr]].mean(0) for c in range(len(CLASSES)) if ((t.labels[rows_tr]==c) & has[rows_tr]).any()] )
        present = [c for c in range(len(CLASSES)) if ((t.labels[rows_tr]==c) & has[rows_tr]).any()]
        out = np.full((len(x), len(CLASSES)), 0.0)
        out[:, present] = -((x[:,None,:]-mu[None])**2).sum(-1)/2
        return out, present
    tr = np.concatenate([sp.train, sp.val]); te = sp.test; y = t.labels[te]
    lv,_ = ll(xv, t.presence[:,0], tr); lt,pt = ll(xt, t.presence[:,2], tr)
    lt_full = np.full_like(lt, -1e9); lt_full[:, pt] = lt[:, pt]
    for name, parts in [("V",[(lv,0)]),("T",[(lt_full,2)]),("V+T",[(lv,0),(lt_full,2)])]:
        score = sum(l*t.presence[:,m:m+1] for l,m in parts)[te]
        ok = np.any([t.presence[te,m] for _,m in parts], axis=0)
        res[name].append(((score.argmax(1)==y)[ok]).mean())
for k,v in res.items(): print(k, f"{100*np.mean(v):.1f} ± {100*np.std(v, ddof=1):.1f}")
