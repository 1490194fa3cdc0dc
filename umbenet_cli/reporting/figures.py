"""Figures of one experiment: confusion matrix, training curves, feature projection (Fig. 6).

Every figure is a ``matplotlib.figure.Figure`` on an Agg canvas (never pyplot), saved as PNG;
a function returns the path written, or None when the runs hold nothing to draw.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from umbenet_cli.evaluation.confusion import plot_confusion
from umbenet_cli.reporting.collect import Experiment, read_metrics

DPI = 110


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def pca2(x: np.ndarray) -> np.ndarray:
    """[N, D] -> [N, 2]: the first two principal components (numpy SVD of the centred data);
    zero columns where the data has fewer than two directions of variance."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros((x.shape[0], 2))
    if x.shape[0] < 2:
        return out
    centred = x - x.mean(0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(2, int((s > 1e-12 * max(s.max(), 1e-300)).sum()))
    out[:, :k] = u[:, :k] * s[:k]
    return out


def class_colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def confusion_figure(exp: Experiment, path: Path) -> Path | None:
    """Row-normalised confusion matrix of the full subset, summed over folds."""
    name = exp.trained_name
    cms = [np.asarray(fe.subset(name)["confusion"], dtype=np.int64) for fe in exp.folds if fe.subset(name)]
    if not cms:
        return None
    folds = f"{len(cms)} folds summed" if len(cms) > 1 else "1 fold"
    which = sorted({Path(str(fe.results.get("checkpoint", "?"))).name for fe in exp.folds if fe.subset(name)})
    return plot_confusion(np.sum(cms, axis=0), exp.classes, path, normalise=True,
                          title=f"{exp.name}: {name}, {folds}, {'/'.join(which)} checkpoint")


def curves_figure(exp: Experiment, path: Path) -> Path | None:
    """Training loss and validation UAR per epoch: one column per stage, one line per fold."""
    stages: dict[str, list[tuple[str, list[dict]]]] = {}
    for fe in exp.folds:
        for stage_dir in exp.stage_dirs(fe):
            lines = read_metrics(stage_dir)
            if lines:
                label = "train-test" if fe.fold is None else f"fold {fe.fold}"
                stages.setdefault(stage_dir.name, []).append((label, lines))
    if not stages:
        return None
    order = [s for s in ("stage1", "stage2", "onestage") if s in stages]
    fig = new_figure(4.2 * len(order) + 0.8, 6.0)
    axes = fig.subplots(2, len(order), squeeze=False)
    for col, stage in enumerate(order):
        for label, lines in stages[stage]:
            epochs = [m["epoch"] for m in lines]
            axes[0, col].plot(epochs, [m["train"]["total"] for m in lines], marker="o", ms=3, label=label)
            axes[1, col].plot(epochs, [100 * m["val"]["uar"] for m in lines], marker="o", ms=3, label=label)
        axes[0, col].set_title(f"{stage}: training loss")
        axes[1, col].set_title(f"{stage}: validation UAR (%)")
        seen = sorted({m["epoch"] for _, lines in stages[stage] for m in lines})
        for row in (0, 1):
            axes[row, col].xaxis.set_major_locator(MaxNLocator(integer=True))
            if len(seen) < 3:  # one or two epochs: whole-epoch ticks, not matplotlib's 0.945-1.050
                axes[row, col].set_xticks(seen)
                axes[row, col].set_xlim(seen[0] - 0.5, seen[-1] + 0.5)
            axes[row, col].set_xlabel("epoch")
            axes[row, col].grid(alpha=0.3)
        axes[0, col].legend(fontsize=7)
    fig.suptitle(f"{exp.name}: training curves")
    return save(fig, path)


def features_figure(exp: Experiment, path: Path) -> Path | None:
    """PCA of the features before (mean input frame embedding) and after (fused) the model, coloured
    by class, on the first fold's evaluated clips (each fold is its own model)."""
    fe = next((f for f in exp.folds if (f.eval_dir / "features.npz").is_file()), None)
    if fe is None:
        return None
    with np.load(fe.eval_dir / "features.npz") as f:
        labels, inputs, fused = f["labels"], f["inputs"], f["fused"]
    keep = np.abs(fused).sum(1) > 0  # clips predicted under the full subset
    labels, inputs, fused = labels[keep], inputs[keep], fused[keep]
    if len(labels) < 2:
        return None
    colours = class_colours(len(exp.classes))
    fig = new_figure(11.0, 4.8)
    axes = fig.subplots(1, 2)
    fold = "train-test" if fe.fold is None else f"fold {fe.fold}"
    for ax, x, what in ((axes[0], inputs, "before: input features"), (axes[1], fused, "after: fused features")):
        xy = pca2(x)
        for c, name in enumerate(exp.classes):
            sel = labels == c
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=colours[c], label=f"{c} {name}", alpha=0.8)
        ax.set_title(f"{what} (PCA)")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{exp.name}: {fe.results['split']} clips of {fold}, {exp.trained_name}")
    return save(fig, path)
