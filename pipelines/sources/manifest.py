"""Generic source adapter for the user's own data: a CSV manifest or a DFER list file.

Two formats, told apart by their first line:

(a) CSV with a header ``path,label[,text][,split][,fold]`` (any column order and case). ``label``
    is a class name or a 0-based index; ``split`` is train/val/test; ``fold`` is the fold whose
    test set holds the clip. With both, the fold decides the test set: ``split=val`` marks a clip
    that validates the runs of the other folds (never its own fold's, where it is a test clip),
    and ``split=test`` is reported (``split-with-fold``) since the fold overrides it. ``path`` is a video file or a frame folder.
(b) The list format of public DFER code, one clip per line, space separated:
    ``<frame_dir> <num_frames> <label_index>`` (0-based labels). The frame count is kept in
    ``ClipRecord.listed_frames`` so prep can compare it with the frames really on disk. The split
    comes from the ``split`` argument or, failing that, from the file name (``train.txt``...).

Relative paths resolve against ``base_dir`` (default: the manifest's folder). The class order is
never inferred from the labels: it is ``classes`` or the lines of a ``classes.txt`` beside the
manifest.
"""
from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from pipelines.sources.layout import (
    VIDEO_SUFFIXES, clean_text, pick_column, read_table, read_text_lines,
)
from pipelines.sources.records import ClipRecord, Problem, ScanError, SourceScan
from pipelines.sources.validate import check_media, dedupe
from umbenet_cli.data.classes import label_index

log = logging.getLogger(__name__)

TEXT_CHOICES = ("annotation", "asr")
SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val",
                 "test": "test"}


def scan_manifest(
    path: str | Path | Sequence[str | Path],
    classes: Sequence[str] | None = None,
    base_dir: str | Path | None = None,
    *,
    text: str = "annotation",
    split: str | None = None,
    name: str = "manifest",
) -> SourceScan:
    """Scan one manifest (or several, e.g. ``train.txt`` and ``test.txt``) into a SourceScan.

    Args:
        path: a CSV manifest or a list file, or a sequence of them (one dataset).
        classes: the class names in label-index order (a tuple or list; never a set). None: read
            ``classes.txt`` (one name per line) next to the first manifest.
        base_dir: folder that relative media paths resolve against (default: the manifest's).
        text: ``"annotation"``: the CSV's ``text`` column (empty cell: no text); ``"asr"``: prep
            transcribes video records (frame folders have no audio: ``text_source="none"``).
        split: the split of list-format files that carry none (train/val/test); None infers it
            from the file name, or leaves it unset.
        name: the dataset name recorded in the scan.

    Protocol: ``"<k>-fold"`` when records carry folds, ``"train/test"`` when they carry splits,
    else ``"unsplit"``. Raises ScanError for unreadable manifests or a missing class list.
    """
    if text not in TEXT_CHOICES:
        raise ValueError(f"text must be one of {list(TEXT_CHOICES)}, not {text!r}")
    if split is not None and split.lower() not in SPLIT_ALIASES:
        raise ValueError(f"split must be one of train/val/test or None, not {split!r}")
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    if not paths:
        raise ValueError("scan_manifest needs at least one manifest path")
    for manifest in paths:
        if not manifest.is_file():
            raise ScanError(f"manifest not found: {manifest} is not a file. Check the path.")
    class_tuple = _resolve_classes(classes, paths[0])

    problems: list[Problem] = []
    rows: list[dict] = []
    for manifest in paths:
        base = Path(base_dir) if base_dir is not None else manifest.parent
        default_split = SPLIT_ALIASES[split.lower()] if split else _split_from_name(manifest)
        if _is_csv(manifest):
            rows += _read_csv(manifest, base, problems)
        else:
            rows += _read_list(manifest, base, default_split, problems)

    records = _build_records(rows, class_tuple, text, problems)
    problems += check_media(records)
    folds = {r.fold for r in records if r.fold is not None}
    protocol = (f"{len(folds)}-fold" if folds
                else "train/test" if any(r.split for r in records) else "unsplit")
    log.info("manifest %s: %d clips, protocol %s, %d problems",
             ", ".join(map(str, paths)), len(records), protocol, len(problems))
    return SourceScan(name, class_tuple, records, problems, protocol)


def _resolve_classes(classes: Sequence[str] | None, manifest: Path) -> tuple[str, ...]:
    """The ordered class list: as given, or from ``classes.txt`` next to the manifest."""
    if isinstance(classes, (set, frozenset)):
        raise ValueError("classes must be an ordered list or tuple (label i = classes[i]), not a set")
    if isinstance(classes, str):
        raise ValueError(f"classes must be a list of names, not the string {classes!r}")
    if classes is None:
        listing = manifest.parent / "classes.txt"
        if not listing.is_file():
            raise ScanError(
                f"no class list for {manifest}: the class order cannot be guessed from the labels. "
                f"Pass it explicitly (classes=('happy', 'sad', ...); on the command line "
                f"--classes happy,sad,...) or write {listing} with one class name per line, "
                f"line i being label index i."
            )
        lines, _ = read_text_lines(listing)
        classes = [line.strip() for _, line in lines if not line.strip().startswith("#")]
        where = str(listing)
    else:
        where = "classes"
    class_tuple = tuple(str(c).strip() for c in classes)
    lowered = [c.lower() for c in class_tuple]
    if not class_tuple or any(not c for c in class_tuple):
        raise ScanError(f"the class list from {where} is empty or has blank names: {list(class_tuple)}")
    duplicates = sorted({c for c in lowered if lowered.count(c) > 1})
    if duplicates:
        raise ScanError(f"the class list from {where} names {duplicates} more than once; "
                        f"each class must appear once, in label-index order")
    return class_tuple


def _is_csv(manifest: Path) -> bool:
    """CSV if the suffix says so or the first non-blank line has a comma and a path/label header."""
    if manifest.suffix.lower() == ".csv":
        return True
    lines, _ = read_text_lines(manifest)
    if not lines:
        return False
    header = [c.strip().lower() for c in lines[0][1].split(",")]
    return "path" in header and "label" in header


def _split_from_name(manifest: Path) -> str | None:
    """``train_list.txt`` -> "train"; "val"/"valid" -> "val"; "test" -> "test"; else None."""
    words = re.split(r"[^a-z]+", manifest.stem.lower())
    found = {SPLIT_ALIASES[w] for w in words if w in SPLIT_ALIASES}
    return found.pop() if len(found) == 1 else None


def _read_csv(manifest: Path, base: Path, problems: list[Problem]) -> list[dict]:
    df = read_table(manifest)
    path_col, label_col = pick_column(df, ("path",)), pick_column(df, ("label",))
    if path_col is None or label_col is None:
        raise ScanError(
            f"{manifest}: a CSV manifest needs a header row with 'path' and 'label' columns "
            f"(optional: text, split, fold); found {[str(c) for c in df.columns]}. Add the header."
        )
    text_col, split_col, fold_col = (pick_column(df, (c,)) for c in ("text", "split", "fold"))
    rows = []
    for number, row in enumerate(df.to_dict("records"), start=2):
        raw_path = str(row[path_col]).strip()
        if not raw_path:
            problems.append(Problem(None, "bad-line", f"{manifest}:{number}: empty path"))
            continue
        rows.append({
            "raw_path": raw_path, "base": base, "label": str(row[label_col]).strip(),
            "text": clean_text(row[text_col]) if text_col else None,
            "split": str(row[split_col]).strip() if split_col else None,
            "fold": str(row[fold_col]).strip() if fold_col else None,
            "frames": None, "where": f"{manifest.name}:{number}",
        })
    return rows


def _read_list(manifest: Path, base: Path, split: str | None, problems: list[Problem]) -> list[dict]:
    lines, bad = read_text_lines(manifest)
    problems += [Problem(None, "bad-encoding", f"{manifest}:{n} is not UTF-8") for n in bad]
    rows = []
    for number, line in lines:
        # rsplit: the frame folder may itself hold spaces; the two numbers never do.
        fields = line.strip().rsplit(None, 2)
        if len(fields) != 3 or not re.fullmatch(r"\d+", fields[1]):
            problems.append(Problem(None, "bad-line", f"{manifest}:{number}: expected "
                                    f"'<frame_dir> <num_frames> <label_index>', got {line!r}"))
            continue
        rows.append({
            "raw_path": fields[0], "base": base, "label": fields[2], "text": None,
            "split": split, "fold": None, "frames": int(fields[1]),
            "where": f"{manifest.name}:{number}",
        })
    return rows


def _build_records(
    rows: list[dict], classes: tuple[str, ...], text: str, problems: list[Problem],
) -> list[ClipRecord]:
    for row in rows:
        row["clip_id"] = os.path.normpath(row["raw_path"].replace("\\", "/")).replace(os.sep, "/")
    splits: dict[str, set] = defaultdict(set)
    folds: dict[str, set] = defaultdict(set)
    for row in rows:
        splits[row["clip_id"]].add(row["split"])
        folds[row["clip_id"]].add(row["fold"])
    for clip_id in splits:
        if len(splits[clip_id]) > 1:
            problems.append(Problem(clip_id, "inconsistent-splits",
                                    f"listed in splits {sorted(map(str, splits[clip_id]))}"))
        if len(folds[clip_id]) > 1:
            problems.append(Problem(clip_id, "inconsistent-folds",
                                    f"listed in folds {sorted(map(str, folds[clip_id]))}"))
    first, dup_problems = dedupe([(r["clip_id"], (r["label"], r["text"], r["frames"]), r["where"])
                                  for r in rows])
    problems += dup_problems

    records = []
    done: set[str] = set()
    for row in rows:
        clip_id = row["clip_id"]
        if clip_id in done:
            continue
        done.add(clip_id)
        label = _parse_label(row["label"], classes)
        if label is None:
            problems.append(Problem(clip_id, "unknown-label", f"{row['where']}: label "
                                    f"{row['label']!r} is neither a class of {list(classes)} nor "
                                    f"an index 0-{len(classes) - 1}"))
            continue
        split, fold = _parse_split(row, problems), _parse_fold(row, problems)
        if split == "test" and fold is not None:
            problems.append(Problem(clip_id, "split-with-fold", f"{row['where']}: split 'test' and fold {fold}: "
                                    f"the fold decides (a test clip of fold {fold}, a training clip of the "
                                    f"others); leave split empty, or 'val' to validate the other folds"))
        media = Path(row["raw_path"])
        media = media if media.is_absolute() else row["base"] / media
        kind = "frames" if media.is_dir() or (not media.exists() and
                                              media.suffix.lower() not in VIDEO_SUFFIXES) else "video"
        if text == "asr":
            body, source = None, ("asr" if kind == "video" else "none")
        else:
            body, source = row["text"], ("annotation" if row["text"] else "none")
        records.append(ClipRecord(
            clip_id=clip_id, media_path=media, media_kind=kind, label=label, text=body,
            text_source=source, fold=fold, split=split, listed_frames=row["frames"],
        ))
    return records


def _parse_label(raw: str, classes: tuple[str, ...]) -> int | None:
    """A 0-based index (``"3"``) or a class name (any case); None when it is neither."""
    if re.fullmatch(r"-?\d+", raw):
        index = int(raw)
        return index if 0 <= index < len(classes) else None
    try:
        return label_index(classes, raw)
    except ValueError:
        return None


def _parse_split(row: dict, problems: list[Problem]) -> str | None:
    raw = row["split"]
    if raw is None:
        return None
    split = SPLIT_ALIASES.get(raw.lower())
    if split is None:
        problems.append(Problem(row["clip_id"], "bad-value", f"{row['where']}: split {raw!r} is "
                                f"not train/val/test"))
    return split


def _parse_fold(row: dict, problems: list[Problem]) -> int | None:
    raw = row["fold"]
    if raw is None:
        return None
    if not re.fullmatch(r"\d+", raw):
        problems.append(Problem(row["clip_id"], "bad-value", f"{row['where']}: fold {raw!r} is "
                                f"not a whole number"))
        return None
    return int(raw)
