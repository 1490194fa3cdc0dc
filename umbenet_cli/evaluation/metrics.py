"""Classification scores of a whole split: confusion matrix, per-class recall, UAR, WAR.

Every score is computed from the confusion matrix of the WHOLE split (all clips at once), never
averaged over mini-batches: a batch-averaged UAR, a known trap of public DFER code, depends on the
batch size and on which clips share a batch. Functions return fractions in [0, 1]; ``pct`` formats
them as percentages for reports. numpy only (scikit-learn is a test-time reference, not a
dependency). The rules below are stated once here and quoted by every output that uses them.

- WAR (weighted average recall) = accuracy = trace(cm) / cm.sum().
- UAR (unweighted average recall): ``UAR_RULE``. Which classes are averaged is decided by the true
  labels of the split alone, the same way for every class setting (all classes, or without
  neutral under either rule below); a class with no true clip in the split has no recall (NaN)
  and is left out of the mean, as scikit-learn's ``balanced_accuracy_score`` does. ``Scores``
  records how many classes were averaged (``uar_classes``).
- Without neutral (MAFW's 10-class setting), two rules, each named wherever a number appears:
  ``WITHOUT_NEUTRAL_RULES["authors"]`` (the authors' ``ConfusionMatrix.py``: the neutral row and
  column are deleted) and ``WITHOUT_NEUTRAL_RULES["strict"]`` (the neutral column is kept).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from umbenet_cli.errors import UserError

Rule = Literal["authors", "strict"]
RULES: tuple[Rule, ...] = ("authors", "strict")

UAR_RULE = (
    "UAR is the mean per-class recall over the classes that have at least one true clip in the "
    "split (a class with no clip in the split has no recall and is left out of the mean; "
    "uar_classes says how many were averaged); WAR is the accuracy over the clips scored."
)

WITHOUT_NEUTRAL_RULES: dict[str, str] = {
    "authors": (
        "authors' rule (ConfusionMatrix.py, display_cls_confusion_matrix_6): the neutral row AND "
        "column of the confusion matrix are deleted and UAR/WAR are computed on the remaining "
        "matrix, so neutral clips are left out and a clip predicted as neutral drops out of the "
        "counts; a class whose clips were all predicted neutral has recall 0 (and WAR is 0 if "
        "every clip was)"
    ),
    "strict": (
        "strict rule: neutral clips are left out, the neutral column is kept, so a clip "
        "predicted as neutral counts as an error"
    ),
}
RULE_LABELS: dict[str, str] = {"authors": "authors' rule", "strict": "strict rule"}

class MetricsError(UserError, ValueError):
    """Labels or a confusion matrix that cannot be scored; the message names the fix."""


def _labels(y: Any, name: str, n_classes: int) -> np.ndarray:
    """``y`` as a 1-D int64 array of class indices in [0, n_classes)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        hint = "; take argmax(axis=1) of the logits" if arr.ndim == 2 else ""
        raise MetricsError(f"{name} must be 1-D class indices, got shape {arr.shape}{hint}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise MetricsError(
            f"{name} must hold integer class indices, got dtype {arr.dtype}; "
            "convert with .astype(int) (or take argmax of scores)"
        )
    bad = (arr < 0) | (arr >= n_classes)
    if bad.any():
        raise MetricsError(
            f"{name} has labels outside [0, {n_classes - 1}] (e.g. {arr[bad][:5].tolist()}); "
            f"labels must be 0-based indices below n_classes={n_classes}"
        )
    return arr.astype(np.int64, copy=False)


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs.

    y_true, y_pred: [N] integer class indices in [0, n_classes). Returns int64 [C, C] with rows =
    true class and columns = predicted class (scikit-learn's convention).
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise MetricsError(f"n_classes must be a positive integer, got {n_classes!r}")
    t = _labels(y_true, "y_true", int(n_classes))
    p = _labels(y_pred, "y_pred", int(n_classes))
    if t.shape != p.shape:
        raise MetricsError(
            f"y_true has {t.size} labels but y_pred has {p.size}; pass one prediction per clip"
        )
    c = int(n_classes)
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c).astype(np.int64)


def check_confusion(cm: Any) -> np.ndarray:
    """``cm`` as an int64 [C, C] array of non-negative counts; MetricsError otherwise."""
    arr = np.asarray(cm)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise MetricsError(f"a confusion matrix must be square [C, C], got shape {arr.shape}")
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
        raise MetricsError(f"a confusion matrix holds integer counts, got dtype {arr.dtype}")
    if (arr < 0).any():
        raise MetricsError("a confusion matrix holds counts; it has negative entries")
    return arr.astype(np.int64, copy=False)


def per_class_recall(cm: Any) -> np.ndarray:
    """Recall of each class: float64 [C], diag / row sum; NaN for a class with no true clip."""
    m = check_confusion(cm)
    support = m.sum(axis=1)
    out = np.full(m.shape[0], np.nan)
    np.divide(np.diag(m), support, out=out, where=support > 0)
    return out


def _total(m: np.ndarray) -> int:
    n = int(m.sum())
    if n == 0:
        raise MetricsError("cannot score an empty split (0 clips); check the split and filters")
    return n


def uar(cm: Any, over: Any = None) -> float:
    """Unweighted average recall in [0, 1] (``UAR_RULE``).

    over: bool [C], the classes averaged; default: the classes with at least one true clip in
    ``cm``. A class in ``over`` without a recall (no clip left in its row) counts as recall 0.
    """
    m = check_confusion(cm)
    _total(m)
    mask = m.sum(axis=1) > 0 if over is None else np.asarray(over, dtype=bool)
    if mask.shape != (m.shape[0],) or not mask.any():
        raise MetricsError(f"uar: `over` must mark at least one of the {m.shape[0]} classes")
    r = np.nan_to_num(per_class_recall(m)[mask], nan=0.0)
    return float(np.mean(r))


def war(cm: Any) -> float:
    """Weighted average recall in [0, 1]: accuracy over the whole split, trace / total."""
    m = check_confusion(cm)
    return float(np.trace(m) / _total(m))


def _class_index(m: np.ndarray, k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < m.shape[0]:
        raise MetricsError(f"class to drop must be an index in [0, {m.shape[0] - 1}], got {k!r}")
    return int(k)


def drop_class(cm: Any, k: int) -> np.ndarray:
    """The strict rule for class ``k``: [C, C] -> [C, C] with row k zeroed.

    Clips whose true label is k are left out (row k becomes zeros, so ``per_class_recall`` is NaN
    there and ``uar`` averages the other classes); column k is kept, so a clip of another class
    predicted as k still counts as wrong in ``uar`` and ``war``. Keeping the matrix square keeps
    index i meaning class i everywhere.
    """
    m = check_confusion(cm).copy()
    m[_class_index(m, k), :] = 0
    return m


def delete_class(cm: Any, k: int) -> np.ndarray:
    """The authors' rule for class ``k``: [C, C] -> [C - 1, C - 1], row k and column k deleted.

    A clip of another class predicted as k is no longer counted anywhere (it leaves its row's
    total), as in the authors' ``display_cls_confusion_matrix_6``.
    """
    m = check_confusion(cm)
    k = _class_index(m, k)
    return np.delete(np.delete(m, k, axis=0), k, axis=1)


@dataclass(frozen=True)
class Scores:
    """Scores of one split. uar, war: fractions in [0, 1]; per_class_recall: [C] in the full class
    order, NaN for a class with no true clip (or the class left out); n: number of clips scored;
    uar_classes: how many classes the UAR averages (``UAR_RULE``)."""

    uar: float
    war: float
    per_class_recall: tuple[float, ...]
    n: int
    uar_classes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN recall -> None, since JSON has no NaN)."""
        recall = [None if math.isnan(r) else r for r in self.per_class_recall]
        return {"uar": self.uar, "war": self.war, "per_class_recall": recall, "n": self.n,
                "uar_classes": self.uar_classes}


def scores_from_confusion(cm: Any, drop: int | None = None, rule: Rule | None = None) -> Scores:
    """``Scores`` of a confusion matrix [C, C] (rows true, columns predicted).

    drop: a class index left out (e.g. MAFW's neutral), scored under ``rule`` ("authors" or
    "strict", see ``WITHOUT_NEUTRAL_RULES``; required with ``drop``). The classes averaged by UAR
    are those with a true clip in ``cm``, less ``drop``, under both rules.
    """
    m = check_confusion(cm)
    if drop is None:
        recall = per_class_recall(m)
        return Scores(uar(m), war(m), tuple(float(r) for r in recall), int(m.sum()),
                      int((m.sum(axis=1) > 0).sum()))
    if rule not in RULES:
        raise MetricsError(f"rule={rule!r}: leaving a class out needs a rule, one of {list(RULES)}")
    k = _class_index(m, drop)
    over = m.sum(axis=1) > 0
    over[k] = False
    if rule == "strict":
        sub = drop_class(m, k)
        recall = per_class_recall(sub)
        return Scores(uar(sub, over), war(sub), tuple(float(r) for r in recall), int(sub.sum()), int(over.sum()))
    sub = delete_class(m, k)
    keep = np.delete(over, k)
    if not keep.any():
        _total(sub)  # only clips of the class left out: nothing to score
    recall = np.insert(per_class_recall(sub), k, np.nan)
    recall[over & np.isnan(recall)] = 0.0  # every clip of the class was predicted neutral
    if sub.sum() == 0:  # every clip was predicted neutral: none recognised
        return Scores(0.0, 0.0, tuple(float(r) for r in recall), 0, int(keep.sum()))
    return Scores(uar(sub, keep), war(sub), tuple(float(r) for r in recall), int(sub.sum()), int(keep.sum()))


def scores(y_true: Any, y_pred: Any, n_classes: int, drop: int | None = None, rule: Rule | None = None) -> Scores:
    """UAR, WAR and per-class recall of a whole split.

    y_true, y_pred: [N] class indices; drop: index of a class left out (e.g. MAFW's neutral for
    the 10-class score) under ``rule`` (see ``scores_from_confusion``), or None.
    """
    return scores_from_confusion(confusion_matrix(y_true, y_pred, n_classes), drop=drop, rule=rule)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of per-fold scores; std is 0.0 for one value.

    ddof=1 because folds are a sample of possible splits (the usual "mean ± std over 5 folds").
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise MetricsError(f"mean_std needs a non-empty list of numbers, got shape {arr.shape}")
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else 0.0
    return float(np.mean(arr)), std


def pct(value: float, std: float | None = None, digits: int = 2, unit: str = "%") -> str:
    """A fraction as a percentage: pct(0.4567) -> '45.67%', pct(0.45, 0.012) -> '45.00 ± 1.20%';
    ``unit=""`` for table cells whose header says "%" once (pct(0.4567, unit="") -> '45.67').

    NaN (no score) -> 'n/a'.
    """
    if value is None or math.isnan(value):
        return "n/a"
    if std is None:
        return f"{100 * value:.{digits}f}{unit}"
    return f"{100 * value:.{digits}f} ± {100 * std:.{digits}f}{unit}"
