"""DFEW source adapter: single-labelled set (7 classes), 5-fold protocol, raw clips or face frames.

Release layout::

    EmoLabel_DataSplit/train(single-labeled)/set_1.csv ... set_5.csv   video_name,label (1-7)
    EmoLabel_DataSplit/test(single-labeled)/set_1.csv ... set_5.csv
    Clip/original/02522.mp4                  raw clips, with audio
    Clip/clip_224x224/02522/*.jpg            pre-cropped face frames

Video names are 5-digit ids; CSV readers and spreadsheets turn ``02522`` into 2522, so ids are
zero-padded back. Labels are taken from the lists; lists that disagree are a problem.
"""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path

from pipelines.sources.layout import (
    VIDEO_SUFFIXES, find_child, find_dirs, listing, loose, need_column, numeric_id, read_table,
    require_dir,
)
from pipelines.sources.records import ClipRecord, Problem, ScanError, SourceScan
from pipelines.sources.validate import assign_folds, check_media, dedupe
from umbenet_cli.data.classes import DFEW_CLASSES

log = logging.getLogger(__name__)

MEDIA_CHOICES = ("auto", "clips", "frames")
ID_WIDTH = 5
FOLDS = range(1, 6)


def scan_dfew(root: str | Path, media: str = "auto") -> SourceScan:
    """Scan a DFEW release: one record per clip of the single-labelled 5-fold lists.

    Args:
        root: the release folder (holding ``EmoLabel_DataSplit/`` and ``Clip/``).
        media: ``"clips"``: ``Clip/original/<id>.mp4`` (media_kind "video", speech present, so
            ``text_source="asr"``); ``"frames"``: ``Clip/clip_224x224/<id>/`` face-frame folders
            (``text_source="none"``); ``"auto"``: clips when that folder holds videos, else frames.

    Returns a ``SourceScan`` with protocol ``"5-fold"``. Raises ScanError when the split lists
    or the chosen media folder cannot be found.
    """
    if media not in MEDIA_CHOICES:
        raise ValueError(f"media must be one of {list(MEDIA_CHOICES)}, not {media!r}")
    root = require_dir(Path(root), "DFEW root")
    train_dir, test_dir = _find_split_dirs(root)
    problems: list[Problem] = []
    lists: dict[int, tuple[set[str] | None, set[str] | None]] = {}
    labels: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)  # id -> (raw, where, is_test)
    for k in FOLDS:
        parts: list[set[str] | None] = []
        for part_dir, is_test in ((train_dir, False), (test_dir, True)):
            path = find_child(part_dir, f"set_{k}.csv", want="file")
            if path is None:
                problems.append(Problem(None, "missing-split-list", f"no set_{k}.csv in {part_dir}"))
                parts.append(None)
                continue
            ids, file_problems = _read_split_csv(path, labels, is_test)
            problems += file_problems
            parts.append(ids)
        lists[k] = (parts[0], parts[1])

    truth, label_problems = _resolve_labels(labels)
    problems += label_problems
    folds, fold_problems = assign_folds(truth, lists)
    problems += fold_problems

    kind, media_dir = _pick_media(root, media)
    index = _media_index(media_dir, kind)
    records = [
        ClipRecord(
            clip_id=clip_id,
            media_path=index.get(clip_id, media_dir / (f"{clip_id}.mp4" if kind == "video" else clip_id)),
            media_kind=kind,
            label=label,
            text=None,
            text_source="asr" if kind == "video" else "none",
            fold=folds.get(clip_id),
            split=None,
        )
        for clip_id, label in sorted(truth.items())
    ]
    problems += check_media(records)
    log.info("DFEW: %d clips (%s from %s), %d problems", len(records), kind, media_dir, len(problems))
    return SourceScan("dfew", DFEW_CLASSES, records, problems, "5-fold")


def _find_split_dirs(root: Path) -> tuple[Path, Path]:
    """``train(single-labeled)`` and ``test(single-labeled)`` under ``EmoLabel_DataSplit``."""
    split_root = find_child(root, "EmoLabel_DataSplit", want="dir")
    if split_root is None:
        found = find_dirs(root, r"emolabel|datasplit", max_depth=2, skip=("clip",))
        split_root = found[0] if found else None
    if split_root is None:
        raise ScanError(
            f"DFEW split lists not found: looked for an 'EmoLabel_DataSplit' folder (any case) in "
            f"{root} (holds: {listing(root)}). Extract the release's EmoLabel_DataSplit there."
        )
    dirs = {}
    for part in ("train", "test"):
        for child in sorted(split_root.iterdir()):
            key = loose(child.name)
            if child.is_dir() and key.startswith(part) and "single" in key:
                dirs[part] = child
                break
        if part not in dirs:
            raise ScanError(
                f"DFEW split lists not found: {split_root} has no '{part}(single-labeled)' folder "
                f"(holds: {listing(split_root)}). Only the single-labelled set is supported; "
                f"check that the release was extracted whole."
            )
    return dirs["train"], dirs["test"]


def _read_split_csv(
    path: Path, labels: dict[str, list[tuple[str, str, bool]]], is_test: bool,
) -> tuple[set[str], list[Problem]]:
    """The ids of one ``set_k.csv``; raw labels are appended to ``labels`` for cross-checking."""
    df = read_table(path)
    name_col = need_column(df, ("video_name", "name", "video"), path, "video_name")
    label_col = need_column(df, ("label", "emotion"), path, "label")
    rows = []
    where_dir = path.parent.name
    for row_number, (name, raw) in enumerate(zip(df[name_col], df[label_col]), start=2):
        if str(name).strip():
            rows.append((numeric_id(name, ID_WIDTH), str(raw).strip(), f"{where_dir}/{path.name}:{row_number}"))
    first, problems = dedupe(rows)
    for clip_id, raw in first.items():
        labels[clip_id].append((raw, f"{where_dir}/{path.name}", is_test))
    return set(first), problems


def _resolve_labels(labels: dict[str, list[tuple[str, str, bool]]]) -> tuple[dict[str, int], list[Problem]]:
    """One 0-based label per clip; ``unknown-label`` and ``conflicting-labels`` problems."""
    truth: dict[str, int] = {}
    problems = []
    for clip_id, entries in labels.items():
        parsed = [(_parse_label(raw), raw, where, is_test) for raw, where, is_test in entries]
        unknown = sorted({raw for label, raw, _, _ in parsed if label is None})
        if unknown:
            problems.append(Problem(clip_id, "unknown-label", f"label {unknown[0]!r} is not 1-"
                                    f"{len(DFEW_CLASSES)} ({', '.join(DFEW_CLASSES)})"))
        valid = [(label, where, is_test) for label, _, where, is_test in parsed if label is not None]
        if not valid:
            continue
        if len({label for label, _, _ in valid}) > 1:
            said = ", ".join(f"{where}: {DFEW_CLASSES[label]}" for label, where, _ in valid)
            problems.append(Problem(clip_id, "conflicting-labels", said))
        # Prefer the test list's label: it is the one the clip is scored against.
        truth[clip_id] = sorted(valid, key=lambda v: not v[2])[0][0]
    return truth, problems


def _parse_label(raw: str) -> int | None:
    if re.fullmatch(r"\d+(\.0+)?", raw):
        number = int(float(raw))
        if 1 <= number <= len(DFEW_CLASSES):
            return number - 1
    return None


def _pick_media(root: Path, media: str) -> tuple[str, Path]:
    """``("video", Clip/original)`` or ``("frames", Clip/clip_224x224)`` as asked or available."""
    clip_root = find_child(root, "Clip", want="dir") or root
    original = find_child(clip_root, "original", want="dir")
    frames = find_child(clip_root, "clip_224x224", want="dir")
    has_videos = original is not None and any(
        p.suffix.lower() in VIDEO_SUFFIXES for p in original.iterdir()
    )
    if media == "clips" or (media == "auto" and has_videos):
        if original is None:
            raise ScanError(
                f"DFEW clips not found: no 'original' folder in {clip_root} (holds: "
                f"{listing(clip_root)}). Extract Clip/original/*.mp4 there, or pass media='frames'."
            )
        return "video", original
    if frames is None:
        raise ScanError(
            f"DFEW media not found: looked for Clip/original/*.mp4 and Clip/clip_224x224/<id>/ in "
            f"{clip_root} (holds: {listing(clip_root)}). Extract one of them from the release."
        )
    return "frames", frames


def _media_index(media_dir: Path, kind: str) -> dict[str, Path]:
    """Videos (or frame folders) of ``media_dir`` by zero-padded clip id, from one listing."""
    index = {}
    for entry in sorted(media_dir.iterdir()):
        if kind == "video" and entry.suffix.lower() in VIDEO_SUFFIXES:
            index.setdefault(numeric_id(entry.stem, ID_WIDTH), entry)
        elif kind == "frames" and entry.is_dir():
            index.setdefault(numeric_id(entry.name, ID_WIDTH), entry)
    return index
