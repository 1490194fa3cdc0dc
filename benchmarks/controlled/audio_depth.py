"""Why the 6-layer audio encoder did not learn (RESULTS.md, "Noticed, left alone"): AudioEncoder
alone + a linear head, on synthetic clips whose class cue is in 16 log band energies
(``render_audio``), at depth 2 vs 6, log-mel and waveform input, with the encoder as it was
("old": ``audio.residual=false audio.standardize=false``) and as it is now ("fixed", the defaults).
CPU, one thread, about 3 minutes (``--quick``: log-mel only, well under a minute):

    .venv/bin/python benchmarks/controlled/audio_depth.py
    .venv/bin/python benchmarks/controlled/audio_depth.py --quick

Per run: train / test accuracy (the plug-in classifier on the same clips, class means of the
band-energy latent measured on the waveform with ``audio_latent``, is printed first), and

  step drift  mean over the first 20 Adam steps of |F_a after - F_a before| / |F_a - mean F_a| on
              64 training clips: how far one step moves the encoder output, against the spread
              between clips; far above 1 means the head chases a moving target;
  rel         per conv layer, at init and after training: between-clip variance of the
              time-pooled features over their mean square; ~0 = every clip pools to nearly the
              same vector (collapse);
  grad0       per conv layer, the norm of the conv weight's gradient at the first step.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from umbenet_cli.data.synthetic import AUDIO_BANDS, audio_latent, render_audio  # noqa: E402
from umbenet_cli.model import audio as audio_mod  # noqa: E402
from umbenet_cli.model.config import AudioConfig  # noqa: E402

torch.set_num_threads(1)
SR = 16000


def make_clips(n_per_class: int, classes: int, snr: float, seconds: float, seed: int, split: int):
    """Waveforms [N, S] float32 and labels [N]; class means (unit norm in the 16-band latent) fixed
    by ``seed``, clips drawn per ``split``."""
    mu = np.random.default_rng([seed, 3]).standard_normal((classes, AUDIO_BANDS))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, 4, split])
    labels = np.arange(classes * n_per_class) % classes
    waves = np.stack([render_audio(snr * mu[c] + rng.standard_normal(AUDIO_BANDS), seconds, SR, rng) for c in labels])
    return torch.from_numpy(waves.astype(np.float32)), torch.from_numpy(labels)


def plugin_accuracy(xtr, ytr, xte, yte, classes):
    """Nearest class mean (identity covariance, the generator's) on the recovered latent."""
    ltr, lte = audio_latent(xtr.numpy(), SR), audio_latent(xte.numpy(), SR)
    means = np.stack([ltr[ytr.numpy() == c].mean(0) for c in range(classes)])
    pred = ((lte[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    return float((pred == yte.numpy()).mean())


def pooled_per_layer(enc, wave, lengths):
    """Time-pooled (masked mean) output of every conv layer: list of [B, C]."""
    n = lengths if enc.cfg.input == "waveform" else torch.div(lengths, audio_mod.MEL_HOP, rounding_mode="floor")
    out = []
    for (kernel, stride), h in zip(enc.plan, enc.conv_outputs(enc._features(wave, lengths))):
        n = (torch.div(n - kernel, stride, rounding_mode="floor") + 1).clamp(min=1, max=h.shape[-1])
        w = (torch.arange(h.shape[-1])[None, :] < n[:, None]).unsqueeze(1).float()
        out.append((h * w).sum(-1) / w.sum(-1))
    return out


def rel_between(p):
    return float(p.var(0).sum() / p.pow(2).mean(0).sum().clamp(min=1e-30))


def run(input_: str, layers: int, fixed: bool, lr: float, data, args):
    """Train encoder + linear head; returns the row's numbers."""
    xtr, ytr, xte, yte = data
    torch.manual_seed(args.seed)
    cfg = AudioConfig(input=input_, seconds=args.seconds, channels=args.channels, conv_layers=layers,
                      hidden=args.hidden, dropout=0.0, residual=fixed, standardize=fixed)
    enc = audio_mod.AudioEncoder(args.dim, cfg)
    clf = nn.Linear(args.dim, args.classes)
    opt = torch.optim.Adam(list(enc.parameters()) + list(clf.parameters()), lr=lr)
    Ltr, Lte = torch.full((len(xtr),), xtr.shape[1]), torch.full((len(xte),), xte.shape[1])
    probe, Lp = xtr[:64], Ltr[:64]
    convs = [m.weight for m in enc.modules() if isinstance(m, nn.Conv1d)]

    def out_probe():
        enc.eval()
        with torch.no_grad():
            return enc(probe, Lp)

    with torch.no_grad():
        rel0 = [rel_between(p) for p in pooled_per_layer(enc.eval(), xtr[:128], Ltr[:128])]
    g = torch.Generator().manual_seed(args.seed)
    grads0, drift, f = None, [], out_probe()
    t0 = time.time()
    for epoch in range(args.epochs):
        for idx in torch.randperm(len(xtr), generator=g).split(args.batch):
            enc.train()
            loss = nn.functional.cross_entropy(clf(enc(xtr[idx], Ltr[idx])), ytr[idx])
            opt.zero_grad()
            loss.backward()
            if grads0 is None:
                grads0 = [float(w.grad.norm()) for w in convs]
            opt.step()
            if len(drift) < 20:  # how far one step moves F_a, against the spread between clips
                f2 = out_probe()
                drift.append(float((f2 - f).norm() / (f - f.mean(0)).norm().clamp(min=1e-30)))
                f = f2

    def acc(x, y, L):
        enc.eval()
        with torch.no_grad():
            pred = torch.cat([clf(enc(x[i:i + 64], L[i:i + 64])).argmax(1) for i in range(0, len(x), 64)])
        return 100 * float(pred.eq(y).float().mean())

    with torch.no_grad():
        rel1 = [rel_between(p) for p in pooled_per_layer(enc.eval(), xtr[:128], Ltr[:128])]
    res = dict(input=input_, layers=layers, encoder="fixed" if fixed else "old", lr=lr,
               train=acc(xtr, ytr, Ltr), test=acc(xte, yte, Lte), drift=float(np.mean(drift)),
               rel_init=rel0, rel_trained=rel1, grad0=grads0, seconds=time.time() - t0)
    fmt = lambda xs: " ".join("%.0e" % x for x in xs)  # noqa: E731
    print(f"{res['encoder']:>5} {input_:>8} depth {layers} lr {lr:g}: train {res['train']:5.1f}  test {res['test']:5.1f}"
          f"  step drift {res['drift']:5.2f}  ({res['seconds']:.0f}s)\n      rel init [{fmt(rel0)}]  "
          f"rel trained [{fmt(rel1)}]  grad0 [{fmt(grads0)}]", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--train-per-class", type=int, default=40)
    ap.add_argument("--test-per-class", type=int, default=40)
    ap.add_argument("--snr", type=float, default=2.0, help="class-mean norm in the latent (benchmark: 0.8)")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--extra-lrs", nargs="*", type=float, default=[5e-4], help="also run the old deepest stack at these")
    ap.add_argument("--inputs", nargs="+", default=["logmel", "waveform"])
    ap.add_argument("--depths", nargs="+", type=int, default=[2, 6])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="log-mel only")
    args = ap.parse_args()
    if args.quick:
        args.inputs = ["logmel"]
    xtr, ytr = make_clips(args.train_per_class, args.classes, args.snr, args.seconds, args.seed, 0)
    xte, yte = make_clips(args.test_per_class, args.classes, args.snr, args.seconds, args.seed, 1)
    print(f"{len(xtr)} train / {len(xte)} test clips, {args.classes} classes, snr {args.snr}, {args.seconds:g} s; "
          f"plug-in test accuracy {100 * plugin_accuracy(xtr, ytr, xte, yte, args.classes):.1f}%, chance {100 / args.classes:.1f}%")
    rows = []
    for input_ in args.inputs:
        for fixed in (False, True):
            for layers in args.depths:
                rows.append(run(input_, layers, fixed, args.lr, (xtr, ytr, xte, yte), args))
        for lr in args.extra_lrs:  # the old stack at smaller steps: slower, or broken?
            rows.append(run(input_, max(args.depths), False, lr, (xtr, ytr, xte, yte), args))
    print("\n| input | encoder | depth | lr | train % | test % | step drift |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['input']} | {r['encoder']} | {r['layers']} | {r['lr']:g} | {r['train']:.1f} | {r['test']:.1f} | {r['drift']:.2f} |")


if __name__ == "__main__":
    main()
