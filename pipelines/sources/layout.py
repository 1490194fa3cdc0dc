"""Finding files in dataset releases whose copies differ in spelling, and reading them tolerantly.

Names are compared "loosely": case-insensitive, ignoring spaces, punctuation and underscores, so
``Train & Test Set``, ``train_test_set`` and ``TrainTestSet`` all match one another.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from pipelines.sources.records import ScanError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


def loose(name: str) -> str:
    """``name`` lower-cased with everything but letters and digits removed."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def find_child(parent: Path, *names: str, want: str = "any") -> Path | None:
    """The entry of ``parent`` whose name loosely equals one of ``names`` (first name wins).

    ``want`` is ``"dir"``, ``"file"`` or ``"any"``. Returns None when nothing matches.
    """
    if not parent.is_dir():
        return None
    entries = sorted(parent.iterdir())
    for name in names:
        key = loose(name)
        for entry in entries:
            if loose(entry.name) != key:
                continue
            if want == "dir" and not entry.is_dir():
                continue
            if want == "file" and not entry.is_file():
                continue
            return entry
    return None


def find_dirs(root: Path, pattern: str, max_depth: int = 3, skip: Iterable[str] = ()) -> list[Path]:
    """Folders under ``root`` (depth 1..max_depth) whose loose name matches regex ``pattern``.

    Shallowest first, then by name. Folders whose loose name is in ``skip`` (big media folders)
    are not entered, so the search stays cheap on a full release.
    """
    regex = re.compile(pattern)
    skip_keys = {loose(s) for s in skip}
    found: list[tuple[int, str, Path]] = []
    level = [root]
    for depth in range(1, max_depth + 1):
        next_level = []
        for folder in level:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir())
            except OSError:
                continue
            for child in children:
                key = loose(child.name)
                if child.name.startswith(".") or key in skip_keys:
                    continue
                if regex.search(key):
                    found.append((depth, str(child), child))
                next_level.append(child)
        level = next_level
    return [p for _, _, p in sorted(found)]


def listing(root: Path) -> str:
    """A short description of what ``root`` holds, for error messages."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    except OSError as exc:
        return f"(cannot list {root}: {exc})"
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} entries)" if len(names) > 12 else "")
    return shown or "(empty)"


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a ScanError saying what it should have been."""
    if not path.exists():
        raise ScanError(f"{what} not found: {path} does not exist. Check the path you passed.")
    if not path.is_dir():
        raise ScanError(f"{what} must be a folder, but {path} is a file. Pass the folder instead.")
    return path


def strip_video_suffix(name: str) -> str:
    """``"00025.mp4"`` -> ``"00025"``; names without a video suffix are returned stripped."""
    name = name.strip()
    for suffix in VIDEO_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def numeric_id(raw: object, width: int) -> str:
    """A clip id as text; all-digit ids are zero-padded to ``width`` (``2522`` -> ``"02522"``).

    Spreadsheets and CSV readers turn ``02522`` into the number 2522 (or ``"2522.0"``); the
    releases name files with the padded form, so pad back.
    """
    text = strip_video_suffix(str(raw))
    if re.fullmatch(r"\d+\.0+", text):
        text = text.split(".")[0]
    return text.zfill(width) if text.isdigit() else text


def clean_text(value: object) -> str | None:
    """Annotated text, or None when missing: empty, blank and NaN all count as missing."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def read_table(path: Path, **kwargs: object) -> pd.DataFrame:
    """An .xlsx or .csv file as strings, empty cells as ``""`` (so "NA" text stays text)."""
    try:
        if path.suffix.lower() in (".xlsx", ".xls"):
            return pd.read_excel(path, dtype=str, na_filter=False, **kwargs)
        return pd.read_csv(path, dtype=str, na_filter=False, skipinitialspace=True, **kwargs)
    except Exception as exc:  # pandas raises many types; the user needs the file and the reason
        raise ScanError(f"could not read {path}: {exc}. Check that the file is intact.") from exc


def pick_column(df: pd.DataFrame, aliases: Iterable[str]) -> str | None:
    """The column of ``df`` whose loose name equals one of ``aliases``, or None."""
    by_key = {loose(str(c)): c for c in df.columns}
    for alias in aliases:
        if loose(alias) in by_key:
            return by_key[loose(alias)]
    return None


def need_column(df: pd.DataFrame, aliases: Iterable[str], path: Path, what: str) -> str:
    """Like :func:`pick_column`, but a missing column is a ScanError naming the choices."""
    aliases = list(aliases)
    column = pick_column(df, aliases)
    if column is None:
        raise ScanError(
            f"{path} has no {what} column: looked for {aliases} (any case/spacing), "
            f"found {[str(c) for c in df.columns]}. Check that this is the right file and that "
            f"its first row is the header."
        )
    return column


def read_text_lines(path: Path, gbk: bool = False) -> tuple[list[tuple[int, str]], list[int]]:
    """Non-blank lines of a text file as ``(line_number, text)``, plus the numbers of bad lines.

    Plain lists are UTF-8 (a BOM is dropped). With ``gbk=True`` (MAFW ``with_caption`` lists) the
    file is taken as UTF-8 only if the whole file decodes strictly as UTF-8 (GBK-encoded Chinese
    almost never does); otherwise each line is decoded as GBK. A line that decodes as neither is
    decoded with replacement characters and its number returned in the second list, for the
    caller to report as ``bad-encoding``.
    """
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    bad: list[int] = []
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = []
        fallback = "gbk" if gbk else "utf-8"
        for number, raw in enumerate(data.split(b"\n"), start=1):
            try:
                lines.append(raw.decode(fallback))
            except UnicodeDecodeError:
                lines.append(raw.decode(fallback, errors="replace"))
                bad.append(number)
    kept = [(n, line.rstrip("\r")) for n, line in enumerate(lines, start=1) if line.strip()]
    return kept, bad
