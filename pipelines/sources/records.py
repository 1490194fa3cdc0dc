"""The contract between dataset source adapters and the prep pipeline.

An adapter turns a dataset root into a :class:`SourceScan`: one :class:`ClipRecord` per clip plus
the :class:`Problem` s found on the way. Scanning never decodes media; it only reads annotation
files and checks that media exist. Problems that make the scan meaningless (root missing, no split
lists) raise :class:`ScanError` instead.
"""
from __future__ import annotations

from umbenet_cli.errors import UserError

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MediaKind = Literal["video", "frames"]
TextSource = Literal["annotation", "asr", "none"]
Severity = Literal["error", "warning"]

# Every problem kind an adapter may report, with its severity and what it means.
# "error": the record it names cannot be used as is (``apply_policy(..., "skip")`` drops it), or a
#          file-level problem (clip_id None) that the user should fix.
# "warning": the record is kept and is usable; the user should still know.
PROBLEM_KINDS: dict[str, tuple[Severity, str]] = {
    "absent-on-disk": ("error", "listed in the annotations, but its media is not on disk"),
    "empty-media": ("error", "its frame folder holds no files"),
    "unknown-label": ("error", "its label is not one of the dataset's classes"),
    "duplicate-id": ("error", "the same id is listed more than once with different labels"),
    "conflicting-labels": ("error", "split lists give this clip different labels"),
    "inconsistent-folds": ("error", "not in exactly one fold's test list, or in train and test of one fold"),
    "inconsistent-splits": ("error", "listed in more than one split"),
    "missing-split-list": ("error", "an expected split-list file is missing"),
    "bad-line": ("error", "a line of an annotation file could not be parsed"),
    "bad-value": ("error", "a manifest field holds a value that is not allowed"),
    "duplicate-line": ("warning", "an exact duplicate line; one copy kept"),
    "split-with-fold": ("warning", "split 'test' and a fold: the fold decides which runs test on it"),
    "label-mismatch": ("warning", "a split list disagrees with the label file; the label file wins"),
    "missing-text": ("warning", "no annotated text for a clip that should have some"),
    "missing-file": ("warning", "a secondary file is missing; the record is kept without it"),
    "bad-encoding": ("warning", "a line decoded neither as UTF-8 nor GBK; its captions are not used"),
    "unlabelled-clip": ("warning", "in a split list but not in the label file; ignored"),
}


class ScanError(UserError):
    """A dataset root cannot be scanned (or its problems stop the run).

    The message says what was looked for, where, and how to fix it.
    """


@dataclass(frozen=True)
class ClipRecord:
    """One clip of a dataset, as listed by its annotations (media not decoded).

    ``listed_frames`` is set only by the DFER list format (``<frame_dir> <num_frames> <label>``):
    the frame count the list claims, kept so prep can compare it with the frames really on disk.
    """

    clip_id: str
    media_path: Path
    media_kind: MediaKind
    label: int
    text: str | None
    text_source: TextSource
    fold: int | None
    split: str | None
    scene_path: Path | None = None
    listed_frames: int | None = None

    def __post_init__(self) -> None:
        # These guard adapter code, not user input: a record that breaks them is a bug here.
        if self.media_kind not in ("video", "frames"):
            raise ValueError(f"media_kind must be 'video' or 'frames', not {self.media_kind!r}")
        if self.text_source not in ("annotation", "asr", "none"):
            raise ValueError(f"text_source must be annotation/asr/none, not {self.text_source!r}")
        if self.text is not None and not self.text.strip():
            raise ValueError(f"clip {self.clip_id!r}: empty text must be None, not {self.text!r}")
        if (self.text is None) == (self.text_source == "annotation"):
            raise ValueError(
                f"clip {self.clip_id!r}: text_source 'annotation' goes with a text and only with one"
            )
        if self.label < 0:
            raise ValueError(f"clip {self.clip_id!r}: label must be a 0-based index, not {self.label}")


@dataclass(frozen=True)
class Problem:
    """Something wrong in a dataset. ``clip_id`` is None for file-level problems."""

    clip_id: str | None
    kind: str
    detail: str

    @property
    def severity(self) -> Severity:
        """``"error"`` or ``"warning"`` (see ``PROBLEM_KINDS``; unknown kinds count as errors)."""
        return PROBLEM_KINDS.get(self.kind, ("error", ""))[0]


@dataclass
class SourceScan:
    """What an adapter found under a dataset root.

    ``protocol`` is ``"5-fold"`` (records carry ``fold``, the fold whose test set holds them),
    ``"train/test"`` (records carry ``split``), or, for a manifest with neither column, ``"unsplit"``.
    """

    dataset: str
    classes: tuple[str, ...]
    records: list[ClipRecord]
    problems: list[Problem]
    protocol: str

    def errors(self) -> list[Problem]:
        """The problems of severity ``"error"``."""
        return [p for p in self.problems if p.severity == "error"]

    def warnings(self) -> list[Problem]:
        """The problems of severity ``"warning"``."""
        return [p for p in self.problems if p.severity == "warning"]
