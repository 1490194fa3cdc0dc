"""Confusion-matrix output: rich table, PNG (Agg, no pyplot) and CSV round trip."""
from __future__ import annotations

import csv
import sys

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from umbenet_cli.data.classes import DFEW_CLASSES, MAFW_CLASSES
from umbenet_cli.evaluation import confusion as C
from umbenet_cli.evaluation.metrics import MetricsError, confusion_matrix, drop_class


def _mafw_cm(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 11, 600)
    y_pred = np.where(rng.random(600) < 0.5, y_true, rng.integers(0, 11, 600))
    return confusion_matrix(y_true, y_pred, 11)


def _render(table) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def test_abbreviate_keeps_names_distinct() -> None:
    short = C.abbreviate(MAFW_CLASSES)
    assert short[:4] == ["ange", "disg", "fear", "happ"] and "help" in short
    assert len(set(short)) == 11
    assert C.abbreviate(["happy", "happiness"]) == ["happy", "happi"]


def test_table_counts() -> None:
    cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    table = C.confusion_table(cm, ["happy", "sad", "neutral"], title="fold 1")
    text = _render(table)
    for s in ("fold 1", "true \\ pred", "1 happy", "2 sad", "3 neutral", "counts"):
        assert s in " ".join(text.split())
    rows = [line for line in text.splitlines() if line.strip().startswith("happy")]
    assert rows and rows[0].split() == ["happy", "5", "1", "0", "6"]
    # The diagonal is highlighted, the rest is not.
    columns = table.columns
    assert [list(columns[j + 1].cells)[j].style for j in range(3)] == ["bold green"] * 3
    assert list(columns[2].cells)[0].style != "bold green"


def test_table_row_normalised_percentages() -> None:
    cm = np.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]])
    text = _render(C.confusion_table(cm, ["a", "b", "neutral"], normalise=True))
    assert " 75 " in text and " 25 " in text and " 50 " in text and "row %, rounded" in " ".join(text.split())
    neutral = [line for line in text.splitlines() if "neutral" in line and "-" in line]
    assert neutral  # a row with no true clip shows "-", not 0 % or NaN
    assert "nan" not in text.lower()


def test_table_for_eleven_classes_fits_200_columns() -> None:
    text = _render(C.confusion_table(_mafw_cm(), MAFW_CLASSES, normalise=True))
    assert max(len(line) for line in text.splitlines()) <= 200
    assert all(name in text for name in MAFW_CLASSES)


def test_eleven_classes_readable_at_80_columns() -> None:
    """No class name or number is cut at 80 columns (rich shortened them to 'an…', '10…')."""
    cm = _mafw_cm()
    cm[0] = 0
    cm[0, 0] = 100  # a 100 % cell, the widest number
    console = Console(record=True, width=80)
    console.print(C.confusion_table(cm, MAFW_CLASSES, normalise=True, title="confusion (V+A+T, row %)"))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert all(f"{i + 1} {name}" in " ".join(text.split()) for i, name in enumerate(MAFW_CLASSES))
    assert text.splitlines()[4].split()[-2:] == ["0", "100"]


def test_empty_row_says_why() -> None:
    """A class whose clips all lack the subset's input is starred, not shown as absent from the split."""
    cm = np.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]])
    text = " ".join(_render(C.confusion_table(cm, ["a", "b", "c"], normalise=True, left_out=[0, 0, 2])).split())
    assert "0*" in text and "lacks this subset's modalities" in text
    text = " ".join(_render(C.confusion_table(cm, ["a", "b", "c"], normalise=True, left_out=[0, 0, 0])).split())
    assert "0*" not in text and "lacks" not in text
    assert C.empty_row_note(2) == "all 2 left out: no input" and C.empty_row_note(0) == "no test clip"


def test_png_colour_bar_in_percent_and_empty_row_note(tmp_path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    seen = {}
    real_colorbar, real_text = Figure.colorbar, None

    def colorbar(self, mappable, *a, **k):
        seen["label"], seen["clim"] = k.get("label"), mappable.get_clim()
        return real_colorbar(self, mappable, *a, **k)

    monkeypatch.setattr(Figure, "colorbar", colorbar)
    texts = []
    import matplotlib.axes

    real_text = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, x, y, s, *a, **k: texts.append(s) or real_text(self, x, y, s, *a, **k))
    cm = np.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]])
    C.plot_confusion(cm, ["a", "b", "c"], tmp_path / "cm.png", "t", True, left_out=[0, 0, 2])
    assert seen["clim"] == (0.0, 100.0) and "%" in seen["label"]  # the printed numbers are percent
    assert "75.0" in texts and "all 2 left out: no input" in texts


@pytest.mark.parametrize("normalise", [False, True])
def test_png_written_and_loadable(tmp_path, normalise: bool) -> None:
    cm = drop_class(_mafw_cm(), MAFW_CLASSES.index("neutral"))  # includes an empty row
    path = C.plot_confusion(cm, MAFW_CLASSES, tmp_path / "sub" / "cm.png", "MAFW fold 1", normalise)
    assert path.exists() and path.stat().st_size > 10_000
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) >= 600


def test_png_does_not_touch_pyplot(tmp_path) -> None:
    was_loaded = "matplotlib.pyplot" in sys.modules
    C.plot_confusion(np.eye(2, dtype=int), ["x", "y"], tmp_path / "cm.png", "t", False)
    assert ("matplotlib.pyplot" in sys.modules) == was_loaded


def test_csv_round_trip(tmp_path) -> None:
    cm = confusion_matrix([0, 1, 1, 6, 2], [0, 1, 2, 6, 6], 7)
    path = C.write_confusion_csv(cm, DFEW_CLASSES, tmp_path / "cm.csv")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true\\pred", *DFEW_CLASSES]
    assert [r[0] for r in rows[1:]] == list(DFEW_CLASSES)
    assert rows[2] == ["sad", "0", "1", "1", "0", "0", "0", "0"]
    back, classes = C.read_confusion_csv(path)
    np.testing.assert_array_equal(back, cm)
    assert classes == list(DFEW_CLASSES)


def test_csv_readable_without_this_package(tmp_path) -> None:
    pd = pytest.importorskip("pandas")
    cm = _mafw_cm(1)
    path = C.write_confusion_csv(cm, MAFW_CLASSES, tmp_path / "cm.csv")
    frame = pd.read_csv(path, index_col=0)
    assert list(frame.columns) == list(MAFW_CLASSES) and list(frame.index) == list(MAFW_CLASSES)
    np.testing.assert_array_equal(frame.to_numpy(), cm)


def test_class_count_mismatch_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(MetricsError, match="3x3 but 2 class names"):
        C.confusion_table(np.eye(3, dtype=int), ["a", "b"])
    with pytest.raises(MetricsError, match="not a confusion CSV"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        C.read_confusion_csv(tmp_path / "x.csv")
