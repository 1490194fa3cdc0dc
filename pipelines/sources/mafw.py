"""MAFW source adapter: single-label set (11 classes), 5-fold protocol, English captions or ASR.

Release layout (copies of the release differ in folder spelling, ``.mp4`` suffixes and header
case; all of these are found loosely)::

    clips/00025.mp4 ...
    Labels/single-set.xlsx               name (00025.mp4), single_label (1-11)
    Labels/descriptive_text.xlsx         name, e_cap (English caption), a Chinese caption column
    Train & Test Set/single/no_caption/set_1/{train,test}.txt     "00025.mp4 anger"
    Train & Test Set/single/with_caption/set_1/{train,test}.txt   TAB, GBK: file, label, zh, en

``single-set.xlsx`` is the truth for labels; split lists only assign folds (and are checked
against it). Neutral clips have no caption by design: their text is None, never a filler.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.sources.layout import (
    VIDEO_SUFFIXES, clean_text, find_child, find_dirs, listing, loose, need_column, numeric_id,
    read_table, read_text_lines, require_dir, strip_video_suffix,
)
from pipelines.sources.records import ClipRecord, Problem, ScanError, SourceScan
from pipelines.sources.validate import assign_folds, check_media, dedupe
from umbenet_cli.data.classes import MAFW_CLASSES, label_index

log = logging.getLogger(__name__)

TEXT_CHOICES = ("caption", "asr")
VARIANTS = ("no_caption", "with_caption")
ID_WIDTH = 5  # MAFW clip ids are 5-digit, zero-padded ("00025")
NEUTRAL = MAFW_CLASSES.index("neutral")


@dataclass
class _Lists:
    """The split lists of one variant: fold k -> (train ids, test ids); None where a file is missing."""

    folds: dict[int, tuple[set[str] | None, set[str] | None]] = field(default_factory=dict)
    labels: dict[str, set[str]] = field(default_factory=dict)  # id -> label names the lists give
    captions: dict[str, str] = field(default_factory=dict)  # id -> English caption (with_caption)
    problems: list[Problem] = field(default_factory=list)


def scan_mafw(root: str | Path, text: str = "caption", split_variant: str = "auto") -> SourceScan:
    """Scan a MAFW release: one record per clip of the single-label set.

    Args:
        root: the release folder (holding ``clips/``, ``Labels/`` and the split lists).
        text: ``"caption"``: English captions from ``descriptive_text.xlsx`` (or, when that file
            is absent, from the ``with_caption`` lists); ``"asr"``: no annotated text, prep
            transcribes the audio (``text_source="asr"`` on every record).
        split_variant: which split lists assign folds: ``"no_caption"``, ``"with_caption"``, or
            ``"auto"`` (``no_caption`` when present, else ``with_caption``).

    Returns a ``SourceScan`` with protocol ``"5-fold"``; ``fold`` is the fold whose test list
    holds the clip. Raises ScanError when the root, the label file, the clips or the split lists
    cannot be found.
    """
    if text not in TEXT_CHOICES:
        raise ValueError(f"text must be one of {list(TEXT_CHOICES)}, not {text!r}")
    if split_variant not in ("auto", *VARIANTS):
        raise ValueError(f"split_variant must be one of {['auto', *VARIANTS]}, not {split_variant!r}")
    root = require_dir(Path(root), "MAFW root")
    labels_dir = find_child(root, "Labels", want="dir") or root
    truth, problems = _read_single_set(root, labels_dir)
    clips_dir = find_child(root, "clips", want="dir")
    if clips_dir is None:
        raise ScanError(
            f"MAFW clips not found: looked for a 'clips' folder in {root} (holds: {listing(root)}). "
            f"Extract the release's clips (clips/00025.mp4 ...) there."
        )
    variants = _find_variants(root)
    chosen = _choose_variant(split_variant, variants, root)
    lists = _read_lists(variants[chosen], gbk=chosen == "with_caption")
    problems += lists.problems
    problems += _check_list_labels(truth, lists)
    folds, fold_problems = assign_folds(truth, lists.folds)
    problems += fold_problems

    captions: dict[str, str] = {}
    if text == "caption":
        captions, caption_problems = _captions(labels_dir, variants, lists, chosen)
        problems += caption_problems

    videos = _video_index(clips_dir)
    records = []
    for clip_id, label in truth.items():
        caption = captions.get(clip_id)
        if text == "asr":
            source = "asr"
        elif caption is not None:
            source = "annotation"
        else:
            source = "none"
            if label != NEUTRAL:
                problems.append(Problem(clip_id, "missing-text", f"no English caption for a "
                                        f"{MAFW_CLASSES[label]} clip (only neutral clips lack one)"))
        records.append(ClipRecord(
            clip_id=clip_id,
            media_path=videos.get(clip_id, clips_dir / f"{clip_id}.mp4"),
            media_kind="video",
            label=label,
            text=caption if text == "caption" else None,
            text_source=source,
            fold=folds.get(clip_id),
            split=None,
        ))
    problems += check_media(records)
    log.info("MAFW: %d clips, folds from %s lists, %d problems", len(records), chosen, len(problems))
    return SourceScan("mafw", MAFW_CLASSES, records, problems, "5-fold")


def _read_single_set(root: Path, labels_dir: Path) -> tuple[dict[str, int], list[Problem]]:
    """Labels (0-based) of the single-label set, by clip id, from ``single-set.xlsx``."""
    path = find_child(labels_dir, "single-set.xlsx", "single_set.xlsx", "single-set.csv", want="file")
    if path is None:
        raise ScanError(
            f"MAFW label file not found: looked for single-set.xlsx (any case/spacing) in "
            f"{labels_dir} (holds: {listing(labels_dir)}). Put the release's Labels/ folder "
            f"under {root}."
        )
    df = read_table(path)
    name_col = need_column(df, ("name", "video_name", "file_name", "file"), path, "clip name")
    label_col = need_column(df, ("single_label", "label", "emotion"), path, "label")
    problems: list[Problem] = []
    rows = []
    for row_number, (name, raw) in enumerate(zip(df[name_col], df[label_col]), start=2):
        if not str(name).strip():
            continue
        rows.append((numeric_id(name, ID_WIDTH), str(raw).strip(), f"{path.name}:{row_number}"))
    first, dup_problems = dedupe(rows)
    problems += dup_problems
    truth: dict[str, int] = {}
    for clip_id, raw in first.items():
        label = _label_from_file(raw)
        if label is None:
            problems.append(Problem(clip_id, "unknown-label", f"{path.name} gives label {raw!r}; "
                                    f"expected 1-{len(MAFW_CLASSES)} or one of {list(MAFW_CLASSES)}"))
        else:
            truth[clip_id] = label
    return truth, problems


def _label_from_file(raw: str) -> int | None:
    """``"4"`` -> 3 (labels are 1-based in the release); a class name is accepted as well."""
    if re.fullmatch(r"\d+(\.0+)?", raw):
        number = int(float(raw))
        return number - 1 if 1 <= number <= len(MAFW_CLASSES) else None
    try:
        return label_index(MAFW_CLASSES, raw)
    except ValueError:
        return None


def _find_variants(root: Path) -> dict[str, Path]:
    """The ``single/{no_caption,with_caption}`` folders of the split lists that exist."""
    candidates = find_dirs(root, r"train.*test", max_depth=3, skip=("clips", "frames"))
    for folder in candidates:
        base = find_child(folder, "single", "single_label", "single-set", want="dir") or folder
        variants = {
            "no_caption": find_child(base, "no_caption", "without_caption", want="dir"),
            "with_caption": find_child(base, "with_caption", want="dir"),
        }
        found = {k: v for k, v in variants.items() if v is not None}
        if found:
            return found
    where = ", ".join(str(c) for c in candidates) or "none"
    raise ScanError(
        f"MAFW split lists not found: looked (case-insensitively, up to 3 levels under {root}) for a "
        f"folder named like 'Train & Test Set' holding single/no_caption or single/with_caption; "
        f"candidate folders: {where}. Extract the release's 'Train & Test Set' folder under {root}."
    )


def _choose_variant(requested: str, variants: dict[str, Path], root: Path) -> str:
    if requested == "auto":
        return "no_caption" if "no_caption" in variants else "with_caption"
    if requested not in variants:
        raise ScanError(
            f"MAFW split lists '{requested}' not found under {root}; found only "
            f"{sorted(variants)}. Pass split_variant='auto' or one of those."
        )
    return requested


def _read_lists(variant_dir: Path, gbk: bool) -> _Lists:
    """Read ``set_k/{train,test}.txt`` of one variant (``gbk`` for the TAB/GBK with_caption lists)."""
    lists = _Lists()
    sets: dict[int, Path] = {}
    for child in sorted(variant_dir.iterdir()):
        key = loose(child.name)
        for prefix in ("set", "fold"):
            if child.is_dir() and key.startswith(prefix) and key[len(prefix):].isdigit():
                sets[int(key[len(prefix):])] = child
    if not sets:
        raise ScanError(
            f"MAFW split lists: {variant_dir} holds no set_1..set_5 folders (holds: "
            f"{listing(variant_dir)}). Check that the release's split lists were extracted whole."
        )
    for k in sorted(set(range(1, 6)) | set(sets)):
        parts: list[set[str] | None] = []
        for part in ("train", "test"):
            path = find_child(sets[k], f"{part}.txt", part, want="file") if k in sets else None
            if path is None:
                where = sets.get(k, variant_dir / f"set_{k}")
                lists.problems.append(Problem(None, "missing-split-list",
                                              f"no {part}.txt in {where} (fold {k})"))
                parts.append(None)
            else:
                parts.append(_read_list_file(path, gbk, lists))
        lists.folds[k] = (parts[0], parts[1])
    return lists


def _read_list_file(path: Path, gbk: bool, lists: _Lists) -> set[str]:
    """The clip ids of one list file; labels and captions go into ``lists``."""
    lines, bad = read_text_lines(path, gbk=gbk)
    bad_lines = set(bad)
    rows = []
    for number, line in lines:
        fields = line.split("\t") if gbk else line.rsplit(None, 1)
        if gbk and len(fields) < 2:
            fields = line.rsplit(None, 1)  # a with_caption line with no captions may use spaces
        if len(fields) < 2 or not fields[0].strip():
            lists.problems.append(Problem(None, "bad-line", f"{path}:{number}: expected "
                                          f"'<file> <label>'{' (TAB separated)' if gbk else ''}, "
                                          f"got {line!r}"))
            continue
        clip_id = numeric_id(Path(strip_video_suffix(fields[0])).name, ID_WIDTH)
        label = fields[1].strip()
        rows.append((clip_id, (label,), f"{path.parent.name}/{path.name}:{number}"))
        lists.labels.setdefault(clip_id, set()).add(label)
        if number in bad_lines:
            lists.problems.append(Problem(clip_id, "bad-encoding", f"{path}:{number} is neither "
                                          f"UTF-8 nor GBK; its captions are not used"))
        elif gbk and len(fields) >= 4:
            caption = clean_text(fields[3])
            if caption is not None:
                lists.captions.setdefault(clip_id, caption)
    first, dup_problems = dedupe(rows)
    lists.problems += dup_problems
    return set(first)


def _check_list_labels(truth: dict[str, int], lists: _Lists) -> list[Problem]:
    """``label-mismatch`` where a list disagrees with single-set.xlsx; ``unlabelled-clip``."""
    problems = []
    for clip_id, names in sorted(lists.labels.items()):
        if clip_id not in truth:
            problems.append(Problem(clip_id, "unlabelled-clip", "in the split lists but not in "
                                    "single-set.xlsx (or its label there is unknown); ignored"))
            continue
        expected = MAFW_CLASSES[truth[clip_id]]
        wrong = sorted(n for n in names if n.lower() != expected)
        if wrong:
            problems.append(Problem(clip_id, "label-mismatch", f"split lists say {wrong}, "
                                    f"single-set.xlsx says {expected!r} (kept)"))
    return problems


def _captions(
    labels_dir: Path, variants: dict[str, Path], lists: _Lists, chosen: str,
) -> tuple[dict[str, str], list[Problem]]:
    """English captions by clip id: descriptive_text.xlsx, else the with_caption lists."""
    path = find_child(labels_dir, "descriptive_text.xlsx", "descriptive-text.xlsx", want="file")
    if path is not None:
        df = read_table(path)
        name_col = need_column(df, ("name", "video_name", "file_name"), path, "clip name")
        cap_col = need_column(df, ("e_cap", "en_cap", "english_caption", "caption_en", "english"),
                              path, "English caption")
        captions: dict[str, str] = {}
        for name, caption in zip(df[name_col], df[cap_col]):
            caption = clean_text(caption)
            if str(name).strip() and caption is not None:
                captions.setdefault(numeric_id(name, ID_WIDTH), caption)
        return captions, []
    if "with_caption" not in variants:
        raise ScanError(
            f"MAFW captions not found: no descriptive_text.xlsx in {labels_dir} and no "
            f"with_caption split lists. Put the release's Labels/descriptive_text.xlsx there, or "
            f"pass text='asr' to transcribe the audio instead."
        )
    fallback = lists if chosen == "with_caption" else _read_lists(variants["with_caption"], gbk=True)
    note = Problem(None, "missing-file", f"no descriptive_text.xlsx in {labels_dir}; English "
                   f"captions taken from the with_caption split lists")
    extra = [p for p in fallback.problems if p.kind == "bad-encoding"] if fallback is not lists else []
    return fallback.captions, [note, *extra]


def _video_index(clips_dir: Path) -> dict[str, Path]:
    """Video files of ``clips_dir`` by clip id (one listing instead of a stat per clip)."""
    index = {}
    for entry in sorted(clips_dir.iterdir()):
        if entry.suffix.lower() in VIDEO_SUFFIXES and entry.is_file():
            index.setdefault(numeric_id(entry.stem, ID_WIDTH), entry)
    return index
