"""Whole-split metrics checked against scikit-learn (the reference) and hand-computed cases.

Absent classes, as scikit-learn 1.9 behaves:
- ``balanced_accuracy_score`` builds its matrix over the labels seen in y_true or y_pred, warns
  "y_pred contains classes not in y_true" and drops classes with no true clip from the mean. Our
  ``uar`` gives the same value (classes with no true clip are left out), without a warning.
- ``recall_score(average=None)`` returns 0.0 (with UndefinedMetricWarning) for a class with no true
  clip by default; ``per_class_recall`` returns NaN there, which equals sklearn with
  ``zero_division=np.nan``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from umbenet_cli.data.classes import MAFW_CLASSES, label_index
from umbenet_cli.evaluation import metrics as M

N_RANDOM_CASES = 400


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Labels with C in [2, 11], N in [1, 500]; often some classes absent from y_true / y_pred."""
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 12))
    n = int(rng.integers(1, 501)) if seed % 4 else int(rng.integers(1, 12))  # many tiny splits
    true_pool = rng.choice(c, size=int(rng.integers(1, c + 1)), replace=False)
    pred_pool = rng.choice(c, size=int(rng.integers(1, c + 1)), replace=False)
    y_true = rng.choice(true_pool, size=n)
    y_pred = rng.choice(pred_pool, size=n)
    # A correlated predictor too, so scores span the range instead of hovering at chance.
    keep = rng.random(n) < rng.random()
    y_pred = np.where(keep, y_true, y_pred)
    return y_true, y_pred, c


def _sk(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # absent-class warnings: behaviour documented above
        return fn(*args, **kwargs)


@pytest.mark.parametrize("seed", range(N_RANDOM_CASES))
def test_matches_sklearn_on_random_case(seed: int) -> None:
    y_true, y_pred, c = _random_case(seed)
    labels = list(range(c))
    cm = M.confusion_matrix(y_true, y_pred, c)
    assert cm.dtype == np.int64 and cm.shape == (c, c)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=labels))

    assert M.war(cm) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert M.uar(cm) == pytest.approx(_sk(skm.balanced_accuracy_score, y_true, y_pred), abs=1e-12)

    recall = M.per_class_recall(cm)
    sk_nan = _sk(skm.recall_score, y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
    np.testing.assert_allclose(recall, sk_nan, rtol=0, atol=1e-12, equal_nan=True)
    sk_default = _sk(skm.recall_score, y_true, y_pred, labels=labels, average=None)
    np.testing.assert_allclose(np.nan_to_num(recall, nan=0.0), sk_default, atol=1e-12)
    assert np.array_equal(np.isnan(recall), ~np.isin(labels, y_true))

    s = M.scores(y_true, y_pred, c)
    assert (s.uar, s.war, s.n) == (M.uar(cm), M.war(cm), len(y_true))

    # Dropping a class == scoring only the clips whose true label is not that class, with their
    # predictions unchanged (predictions of the dropped class stay wrong).
    k = seed % c
    rest = y_true != k
    if rest.any():
        d = M.scores(y_true, y_pred, c, drop=k, rule="strict")
        assert d.n == int(rest.sum())
        assert d.war == pytest.approx(skm.accuracy_score(y_true[rest], y_pred[rest]), abs=1e-12)
        ref = _sk(skm.balanced_accuracy_score, y_true[rest], y_pred[rest])
        assert d.uar == pytest.approx(ref, abs=1e-12)
        assert math.isnan(d.per_class_recall[k])
        # The authors' rule == scoring only the clips that are neither of class k nor predicted k;
        # the classes averaged are the same as the strict rule's (those with a true clip, less k).
        a = M.scores(y_true, y_pred, c, drop=k, rule="authors")
        both = rest & (y_pred != k)
        assert a.n == int(both.sum()) and a.uar_classes == d.uar_classes
        if both.any():
            assert a.war == pytest.approx(skm.accuracy_score(y_true[both], y_pred[both]), abs=1e-12)
        averaged = [j for j in range(c) if j != k and (y_true == j).any()]
        recall = [float(np.mean(y_pred[both & (y_true == j)] == j)) if (both & (y_true == j)).any() else 0.0
                  for j in averaged]
        assert a.uar == pytest.approx(float(np.mean(recall)), abs=1e-12)


def test_random_cases_cover_absent_classes() -> None:
    cases = [_random_case(s) for s in range(N_RANDOM_CASES)]
    assert {c for _, _, c in cases} == set(range(2, 12))
    assert min(len(t) for t, _, _ in cases) == 1 and max(len(t) for t, _, _ in cases) > 400
    assert sum(len(np.unique(t)) < c for t, _, c in cases) > 100  # class absent from y_true
    assert sum(len(np.unique(p)) < c for _, p, c in cases) > 100  # class absent from y_pred
    assert sum(bool(np.setdiff1d(p, t).size) for t, p, _ in cases) > 50  # predicted, never true


def test_ten_class_rule_by_hand() -> None:
    # classes: 0 = a, 1 = neutral, 2 = b, 3 = c
    pairs = (
        [(0, 0)] * 2 + [(0, 1), (0, 2)]        # a: 2 of 4 right, one predicted neutral
        + [(1, 1)] * 2 + [(1, 0)]              # neutral: left out of the 10-class score
        + [(2, 2), (2, 1)]                     # b: 1 of 2 right, one predicted neutral
        + [(3, 3)] * 3 + [(3, 0)]              # c: 3 of 4 right
    )
    y_true, y_pred = map(np.array, zip(*pairs))
    full = M.scores(y_true, y_pred, 4)
    assert full.n == 13
    assert full.war == pytest.approx(8 / 13)
    assert full.uar == pytest.approx((2 / 4 + 2 / 3 + 1 / 2 + 3 / 4) / 4)

    ten = M.scores(y_true, y_pred, 4, drop=1, rule="strict")
    assert ten.n == 10                                       # 13 clips - 3 neutral clips
    assert ten.war == pytest.approx(6 / 10)                  # 2 + 1 + 3 right
    assert ten.uar == pytest.approx((2 / 4 + 1 / 2 + 3 / 4) / 3)
    assert math.isnan(ten.per_class_recall[1])
    assert ten.per_class_recall[0] == 0.5 and ten.per_class_recall[3] == 0.75
    # The wrong rule (also removing clips predicted neutral) would give a: 2/3, b: 1/1.
    assert ten.uar != pytest.approx((2 / 3 + 1 + 3 / 4) / 3)

    cm = M.drop_class(M.confusion_matrix(y_true, y_pred, 4), 1)
    assert cm.shape == (4, 4) and cm[1].sum() == 0 and cm[:, 1].sum() == 2


def test_ten_class_rule_on_mafw_classes() -> None:
    neutral = label_index(MAFW_CLASSES, "neutral")
    y_true = np.arange(11).repeat(2)
    y_pred = y_true.copy()
    y_pred[0] = neutral  # one anger clip predicted neutral
    s = M.scores(y_true, y_pred, 11, drop=neutral, rule="strict")
    assert s.n == 20 and s.war == pytest.approx(19 / 20)
    assert s.uar == pytest.approx((0.5 + 9 * 1.0) / 10) and s.uar_classes == 10
    a = M.scores(y_true, y_pred, 11, drop=neutral, rule="authors")  # the anger clip drops out
    assert a.n == 19 and a.war == 1.0 and a.uar == 1.0 and a.uar_classes == 10
    assert "neutral" in M.WITHOUT_NEUTRAL_RULES["strict"]
    assert "row AND column" in M.WITHOUT_NEUTRAL_RULES["authors"]


def test_authors_rule_by_hand() -> None:
    """The authors' display_cls_confusion_matrix_6 (delete the neutral row and column, then recall
    and accuracy on what is left), on a matrix with neutral predictions in several rows."""
    # classes: 0 = a, 1 = b, 2 = neutral, 3 = c, 4 = d. Rows true, columns predicted.
    cm = np.array([
        [5, 1, 2, 0, 0],   # a: 8 clips, 2 predicted neutral
        [0, 3, 1, 1, 0],   # b: 5 clips, 1 predicted neutral
        [1, 0, 6, 0, 1],   # neutral: deleted
        [0, 0, 0, 4, 0],   # c: 4 clips, none predicted neutral
        [1, 0, 3, 0, 2],   # d: 6 clips, 3 predicted neutral
    ])
    # Left after deleting row 2 and column 2 (by hand):
    #   a: [5, 1, 0, 0] -> 6 clips, 5 right;  b: [0, 3, 1, 0] -> 4 clips, 3 right
    #   c: [0, 0, 4, 0] -> 4 clips, 4 right;  d: [1, 0, 0, 2] -> 3 clips, 2 right
    a = M.scores_from_confusion(cm, drop=2, rule="authors")
    assert a.n == 6 + 4 + 4 + 3
    assert a.war == pytest.approx((5 + 3 + 4 + 2) / 17)
    assert a.uar == pytest.approx((5 / 6 + 3 / 4 + 4 / 4 + 2 / 3) / 4)
    assert a.per_class_recall[0] == pytest.approx(5 / 6) and math.isnan(a.per_class_recall[2])
    assert a.uar_classes == 4
    np.testing.assert_array_equal(M.delete_class(cm, 2), [[5, 1, 0, 0], [0, 3, 1, 0], [0, 0, 4, 0], [1, 0, 0, 2]])
    # The strict rule keeps the neutral column: a neutral prediction is an error.
    s = M.scores_from_confusion(cm, drop=2, rule="strict")
    assert s.n == 8 + 5 + 4 + 6
    assert s.war == pytest.approx((5 + 3 + 4 + 2) / 23)
    assert s.uar == pytest.approx((5 / 8 + 3 / 5 + 4 / 4 + 2 / 6) / 4)
    # A class whose every clip was predicted neutral: recall 0 under the authors' rule (not left
    # out, which would raise the UAR of a model that predicts neutral for a hard class).
    cm2 = cm.copy()
    cm2[4] = [0, 0, 6, 0, 0]
    a2 = M.scores_from_confusion(cm2, drop=2, rule="authors")
    assert a2.per_class_recall[4] == 0.0 and a2.uar_classes == 4
    assert a2.uar == pytest.approx((5 / 6 + 3 / 4 + 4 / 4 + 0) / 4)
    with pytest.raises(M.MetricsError, match="needs a rule"):
        M.scores_from_confusion(cm, drop=2)


def test_uar_class_set_is_the_classes_present_under_every_rule() -> None:
    """One rule for a class with no clip in the split: left out of the mean (11-class, strict and
    authors' 10-class alike), and the number averaged is recorded."""
    # classes: 0 = a, 1 = neutral, 2 = b (no clip in this split), 3 = c
    y_true = np.array([0, 0, 1, 1, 3, 3, 3, 3])
    y_pred = np.array([0, 1, 1, 0, 3, 3, 2, 1])
    full = M.scores(y_true, y_pred, 4)
    assert full.uar_classes == 3 and full.uar == pytest.approx((1 / 2 + 1 / 2 + 2 / 4) / 3)
    strict = M.scores(y_true, y_pred, 4, drop=1, rule="strict")
    assert strict.uar_classes == 2 and strict.uar == pytest.approx((1 / 2 + 2 / 4) / 2)
    authors = M.scores(y_true, y_pred, 4, drop=1, rule="authors")
    assert authors.uar_classes == 2 and authors.uar == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert math.isnan(full.per_class_recall[2]) and math.isnan(authors.per_class_recall[2])


def test_batch_averaged_uar_differs_from_whole_split() -> None:
    # The trap: mean of per-batch UARs is not the split's UAR.
    y_true = np.array([0, 0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 0, 0, 1])
    whole = M.scores(y_true, y_pred, 2).uar
    batches = [M.scores(y_true[i:i + 2], y_pred[i:i + 2], 2).uar for i in range(0, 6, 2)]
    assert whole == pytest.approx((4 / 4 + 1 / 2) / 2)
    assert np.mean(batches) == pytest.approx((1 + 1 + 0.5) / 3)  # != 0.75


def test_mean_std() -> None:
    assert M.mean_std([0.5]) == (0.5, 0.0)
    mean, std = M.mean_std([0.40, 0.50, 0.60])
    assert mean == pytest.approx(0.5) and std == pytest.approx(0.1)  # ddof=1: sqrt(0.02 / 2)
    assert M.mean_std(np.array([1.0, 3.0]))[1] == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="non-empty"):
        M.mean_std([])


def test_pct_and_to_dict() -> None:
    assert M.pct(0.4567) == "45.67%"
    assert M.pct(0.45, 0.012) == "45.00 ± 1.20%"
    assert M.pct(float("nan")) == "n/a"
    assert M.pct(1.0, digits=1) == "100.0%"
    d = M.scores([0, 0, 2], [0, 1, 2], 3).to_dict()
    assert d == {"uar": 0.75, "war": pytest.approx(2 / 3), "per_class_recall": [0.5, None, 1.0],
                 "n": 3, "uar_classes": 2}


@pytest.mark.parametrize(
    ("y_true", "y_pred", "n_classes", "match"),
    [
        ([0, 1, 2], [0, 1], 3, "3 labels but y_pred has 2"),
        ([0, 3], [0, 1], 3, r"y_true has labels outside \[0, 2\]"),
        ([0, 1], [-1, 1], 3, "y_pred has labels outside"),
        ([0, 1], [[0.1, 0.9], [0.8, 0.2]], 2, "argmax"),
        ([0.0, 1.0], [0, 1], 2, "integer class indices"),
        ([0, 1], [0, 1], 0, "n_classes must be a positive integer"),
        ([0, 1], [0, 1], 2.0, "n_classes must be a positive integer"),
    ],
)
def test_label_validation(y_true, y_pred, n_classes, match) -> None:
    with pytest.raises(M.MetricsError, match=match):
        M.confusion_matrix(y_true, y_pred, n_classes)


def test_errors_are_value_errors_and_user_errors() -> None:
    from umbenet_cli.errors import UserError

    with pytest.raises(ValueError):
        M.confusion_matrix([0], [5], 2)
    assert issubclass(M.MetricsError, UserError)


@pytest.mark.parametrize(
    ("cm", "match"),
    [
        (np.zeros((2, 3), int), "square"),
        (np.zeros(3, int), "square"),
        (np.array([[1, -1], [0, 2]]), "negative"),
        (np.array([[0.5, 0], [0, 1]]), "integer counts"),
    ],
)
def test_confusion_validation(cm, match) -> None:
    with pytest.raises(M.MetricsError, match=match):
        M.uar(cm)


def test_empty_split_and_bad_drop() -> None:
    with pytest.raises(M.MetricsError, match="empty split"):
        M.scores([], [], 3)
    with pytest.raises(M.MetricsError, match="empty split"):
        M.scores([1, 1], [0, 1], 3, drop=1, rule="strict")  # every clip is of the dropped class
    with pytest.raises(M.MetricsError, match="empty split"):
        M.scores([1, 1], [0, 1], 3, drop=1, rule="authors")
    with pytest.raises(M.MetricsError, match=r"index in \[0, 2\]"):
        M.drop_class(np.eye(3, dtype=int), 3)
