"""Confusion matrices for people: a rich terminal table, a PNG and a CSV.

Layout everywhere: rows = true class, columns = predicted class, in the dataset's class order.
"Normalised" means row-normalised: each cell is the percentage of that true class's clips, so the
diagonal is per-class recall. A row with no true clip (e.g. neutral under the 10-class rule) has no
percentages and is shown blank. The PNG is drawn with matplotlib's Agg canvas on a ``Figure``
object, never pyplot, so nothing global (backend, current figure) changes.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.table import Table
from rich.text import Text

from umbenet_cli.evaluation.metrics import MetricsError, check_confusion

CSV_CORNER = "true\\pred"


def _checked(cm: Any, classes: Sequence[str]) -> np.ndarray:
    m = check_confusion(cm)
    if len(classes) != m.shape[0]:
        raise MetricsError(
            f"confusion matrix is {m.shape[0]}x{m.shape[0]} but {len(classes)} class names were "
            "given; pass the dataset's class list in label order"
        )
    return m


def row_fractions(cm: Any) -> np.ndarray:
    """Row-normalised matrix: float [C, C], cm[i, j] / cm[i].sum(); NaN rows where a class has no
    true clip."""
    m = check_confusion(cm)
    support = m.sum(axis=1, keepdims=True)
    out = np.full(m.shape, np.nan)
    np.divide(m, support, out=out, where=support > 0)
    return out


def abbreviate(classes: Sequence[str], width: int = 4) -> list[str]:
    """Shortest prefixes (at least ``width`` characters) that keep the class names distinct."""
    names = [str(c) for c in classes]
    for w in range(width, max((len(n) for n in names), default=width) + 1):
        short = [n[:w] for n in names]
        if len(set(short)) == len(short):
            return short
    return names


def empty_row_note(n_left_out: int) -> str:
    """What a row without clips means: none in the split, or all left out for lacking the input."""
    return f"all {n_left_out} left out: no input" if n_left_out else "no test clip"


def confusion_table(
    cm: Any, classes: Sequence[str], normalise: bool = False, title: str | None = None,
    left_out: Sequence[int] | None = None,
) -> Table:
    """A rich Table of ``cm`` [C, C] that stays readable at 80 columns: class names down the side
    in class order, numbered columns in the same order (the caption is the legend), the diagonal in bold green, a last column with
    each class's clip count. With ``normalise`` cells are whole row percentages (the diagonal is
    per-class recall; the CSV and PNG hold the exact values). ``left_out`` [C]: clips of each class
    left out of this subset for having none of its modalities, so an empty row says why."""
    from rich import box

    m = _checked(cm, classes)
    frac = row_fractions(m)
    what = "row %, rounded" if normalise else "counts"
    legend = ", ".join(f"{j + 1} {name}" for j, name in enumerate(classes))
    starred = [i for i in range(len(classes)) if left_out is not None and not m[i].sum() and left_out[i]]
    note = (" *: every clip of the class lacks this subset's modalities (left out), not absent from the split."
            if starred else "")
    table = Table(title=title, caption=f"rows: true class, columns: predicted class ({what}): {legend}.{note}",
                  header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    # overflow="fold": a name or number that does not fit wraps inside its cell, never an ellipsis.
    table.add_column("true \\ pred", style="bold", overflow="fold")
    for j in range(len(classes)):
        table.add_column(str(j + 1), justify="right", overflow="fold")
    table.add_column("n", justify="right", style="dim", overflow="fold")
    for i, name in enumerate(classes):
        cells: list[Text] = []
        for j in range(m.shape[1]):
            if normalise:
                s = "-" if np.isnan(frac[i, j]) else f"{100 * frac[i, j]:.0f}"
            else:
                s = str(m[i, j])
            style = "bold green" if i == j else ("dim" if m[i, j] == 0 else "")
            cells.append(Text(s, style=style))
        table.add_row(str(name), *cells, f"{int(m[i].sum())}{'*' if i in starred else ''}")
    return table


def plot_confusion(
    cm: Any, classes: Sequence[str], path: str | Path, title: str = "", normalise: bool = False,
    left_out: Sequence[int] | None = None,
) -> Path:
    """Write ``cm`` [C, C] as a PNG at ``path`` (parent folders created) and return the path.

    Cell colour is always the row percentage (comparable across imbalanced classes; the colour bar
    is in percent, like the printed numbers); the cell text is the count, or the row percentage
    with ``normalise``. A row without clips says why: "no test clip", or, with ``left_out`` [C],
    that its clips were left out for lacking the subset's input.
    """
    m = _checked(cm, classes)
    frac = row_fractions(m)
    c = m.shape[0]
    side = 0.6 * c + 2.8  # inches: ~0.6 in per cell keeps 11 classes' "100.0" legible at 8 pt
    fig = Figure(figsize=(side + 1.0, side), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(100 * frac), cmap="Blues", vmin=0.0, vmax=100.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of the true class's clips (row %)")
    fontsize = 9 if c <= 8 else 8
    for i in range(c):
        if not m[i].sum():
            k = int(left_out[i]) if left_out is not None else 0
            ax.text((c - 1) / 2, i, empty_row_note(k), ha="center", va="center", fontsize=fontsize,
                    color="dimgray", style="italic")
            continue
        for j in range(c):
            if np.isnan(frac[i, j]):
                continue
            text = f"{100 * frac[i, j]:.1f}" if normalise else str(m[i, j])
            colour = "white" if frac[i, j] > 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=colour)
    names = [str(n) for n in classes]
    ax.set_xticks(range(c), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=9)
    ax.set_yticks(range(c), names, fontsize=9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title} ({'row %' if normalise else 'counts'})".strip())
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def write_confusion_csv(cm: Any, classes: Sequence[str], path: str | Path) -> Path:
    """Write counts [C, C] as CSV: header ``true\\pred,<predicted classes...>``, then one row per
    true class starting with its name. Returns the path."""
    m = _checked(cm, classes)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([CSV_CORNER, *map(str, classes)])
        for name, row in zip(classes, m):
            writer.writerow([str(name), *(int(v) for v in row)])
    return out


def read_confusion_csv(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read a file written by ``write_confusion_csv``: (int64 [C, C] counts, class names)."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:1] != [CSV_CORNER]:
        raise MetricsError(f"{path} is not a confusion CSV (first cell must be {CSV_CORNER!r})")
    classes = rows[0][1:]
    if [r[0] for r in rows[1:]] != classes:
        raise MetricsError(f"{path}: row classes differ from column classes {classes}")
    return check_confusion([[int(v) for v in r[1:]] for r in rows[1:]]), classes
