"""Small datasets for prep tests, made from sample_data clips and ffmpeg-generated media."""
from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "mafw"
CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
           "contempt", "anxiety", "helplessness", "disappointment")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "text", "fold"])
        w.writeheader()
        w.writerows(rows)
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return path


def small_manifest(folder: Path, n: int = 6) -> Path:
    """``n`` real sample clips (some without audio), with names that need quoting."""
    picks = ["00007", "00011", "00001", "00018", "00028", "00033", "00002", "00016"][:n]
    names = ["clip one.mp4", "séance 2.mp4", "三.mp4", "d.mp4", "e e.mp4", "f.mp4", "g.mp4", "h.mp4"]
    rows = []
    for i, (src, name) in enumerate(zip(picks, names)):
        shutil.copy(SAMPLE / "clips" / f"{src}.mp4", folder / name) if folder.exists() else None
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE / "clips" / f"{src}.mp4", folder / name)
        rows.append({"path": name, "label": CLASSES[i % len(CLASSES)],
                     "text": "" if i % 3 == 1 else f"a person in scene {i} looks at the camera",
                     "fold": 1 + i % 2})
    return write_manifest(folder, rows)
