"""Checks shared by the source adapters, the problems table, and the stop/skip policy.

Adapters call :func:`check_media`, :func:`dedupe` and :func:`assign_folds` while scanning; the
prep command shows :func:`problems_table` and then calls :func:`apply_policy`.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence

from rich.table import Table

from pipelines.sources.records import PROBLEM_KINDS, ClipRecord, Problem, ScanError, SourceScan

log = logging.getLogger(__name__)

POLICIES = ("stop", "skip")


def check_media(records: Iterable[ClipRecord]) -> list[Problem]:
    """``absent-on-disk`` for media that do not exist, ``empty-media`` for empty frame folders.

    Only ``stat`` and one directory entry per frame folder; nothing is decoded. Placeholder
    (zero-byte) videos pass: their content is prep's business.
    """
    problems = []
    for record in records:
        path = record.media_path
        if record.media_kind == "video":
            if not path.is_file():
                problems.append(Problem(record.clip_id, "absent-on-disk", f"no video file {path}"))
            continue
        if not path.is_dir():
            problems.append(Problem(record.clip_id, "absent-on-disk", f"no frame folder {path}"))
            continue
        with os.scandir(path) as entries:
            if not any(entry.is_file() for entry in entries):
                problems.append(Problem(record.clip_id, "empty-media", f"frame folder {path} is empty"))
    return problems


def dedupe(
    rows: Sequence[tuple[str, Hashable, str]],
) -> tuple[dict[str, Hashable], list[Problem]]:
    """One entry per clip id from ``(clip_id, fields, where)`` rows, in first-seen order.

    ``where`` says where the row came from (``file:line``), for messages. Rows whose ``fields``
    are identical to an earlier row of the same id are exact duplicates: one ``duplicate-line``
    warning per id, one copy kept. Rows of one id whose fields differ are a ``duplicate-id``
    error: the first is kept (so the record exists and can be dropped by policy).
    """
    first: dict[str, Hashable] = {}
    seen_at: dict[str, list[str]] = defaultdict(list)
    variants: dict[str, set[Hashable]] = defaultdict(set)
    for clip_id, fields, where in rows:
        first.setdefault(clip_id, fields)
        seen_at[clip_id].append(where)
        variants[clip_id].add(fields)
    problems = []
    for clip_id, places in seen_at.items():
        if len(places) == 1:
            continue
        if len(variants[clip_id]) > 1:
            detail = f"listed {len(places)} times with different fields ({', '.join(places)})"
            problems.append(Problem(clip_id, "duplicate-id", detail))
        else:
            detail = f"identical line listed {len(places)} times ({', '.join(places)}); one kept"
            problems.append(Problem(clip_id, "duplicate-line", detail))
    return first, problems


def assign_folds(
    clip_ids: Iterable[str],
    lists: dict[int, tuple[set[str] | None, set[str] | None]],
) -> tuple[dict[str, int | None], list[Problem]]:
    """The fold whose test list holds each clip, and ``inconsistent-folds`` problems.

    ``lists[k] = (train_ids, test_ids)`` for fold k; None for a list file that is missing. A clip
    must be in exactly one fold's test list, never in train and test of one fold, and (where both
    lists of a fold exist) in one of them. A clip in several test lists gets fold None.
    """
    folds: dict[str, int | None] = {}
    problems = []
    missing = sorted(k for k, (_, test) in lists.items() if test is None)
    for clip_id in clip_ids:
        in_test = sorted(k for k, (_, test) in lists.items() if test is not None and clip_id in test)
        folds[clip_id] = in_test[0] if len(in_test) == 1 else None
        issues = []
        if len(in_test) > 1:
            issues.append(f"in the test lists of folds {in_test}")
        elif not in_test:
            note = f" (test lists of folds {missing} are missing)" if missing else ""
            issues.append(f"in no fold's test list{note}")
        both = [k for k, (tr, te) in sorted(lists.items())
                if tr is not None and te is not None and clip_id in tr and clip_id in te]
        neither = [k for k, (tr, te) in sorted(lists.items())
                   if tr is not None and te is not None and clip_id not in tr and clip_id not in te]
        if both:
            issues.append(f"in both train and test lists of fold(s) {both}")
        if neither and in_test:
            issues.append(f"in neither list of fold(s) {neither}")
        if issues:
            problems.append(Problem(clip_id, "inconsistent-folds", "; ".join(issues)))
    return folds, problems


def problems_table(scan: SourceScan, examples: int = 3) -> Table:
    """A rich table of ``scan.problems`` grouped by kind: severity, count, meaning, first examples."""
    errors, warnings = len(scan.errors()), len(scan.warnings())
    table = Table(
        title=f"{scan.dataset}: {len(scan.records)} clips, {errors} errors, {warnings} warnings",
        show_lines=False,
    )
    for column in ("kind", "severity", "count", "meaning", "examples"):
        table.add_column(column, overflow="fold", justify="right" if column == "count" else "left")
    groups: dict[str, list[Problem]] = defaultdict(list)
    for problem in scan.problems:
        groups[problem.kind].append(problem)
    order = sorted(groups, key=lambda k: (groups[k][0].severity != "error", -len(groups[k]), k))
    for kind in order:
        items = groups[kind]
        shown = "\n".join(_example(p) for p in items[:examples])
        if len(items) > examples:
            shown += f"\n... and {len(items) - examples} more"
        style = "red" if items[0].severity == "error" else "yellow"
        meaning = PROBLEM_KINDS.get(kind, ("error", ""))[1]
        table.add_row(kind, f"[{style}]{items[0].severity}[/]", str(len(items)), meaning, shown)
    return table


def _example(problem: Problem) -> str:
    return f"{problem.clip_id}: {problem.detail}" if problem.clip_id else problem.detail


def summarise(problems: Sequence[Problem], examples: int = 2) -> str:
    """One line per problem kind: count and the first examples."""
    counts = Counter(p.kind for p in problems)
    lines = []
    for kind, count in counts.most_common():
        first = [_example(p) for p in problems if p.kind == kind][:examples]
        lines.append(f"  {kind}: {count} (e.g. {'; '.join(first)})")
    return "\n".join(lines)


def apply_policy(scan: SourceScan, on_problem: str = "stop") -> SourceScan:
    """Act on a scan's problems before any heavy work.

    ``"stop"``: raise :class:`ScanError` summarising the errors, if there are any (warnings are
    logged and the scan returned as is). ``"skip"``: return a copy without the records named by
    an error; ``problems`` is kept whole so reports can say what was dropped. Raises ScanError if
    nothing usable is left.
    """
    if on_problem not in POLICIES:
        raise ValueError(f"on_problem must be one of {list(POLICIES)}, not {on_problem!r}")
    errors, warnings = scan.errors(), scan.warnings()
    if warnings:
        log.warning("%s: %d warnings (records kept):\n%s", scan.dataset, len(warnings), summarise(warnings))
    bad_ids = {p.clip_id for p in errors if p.clip_id is not None}
    if on_problem == "stop" and errors:
        affected = sum(1 for r in scan.records if r.clip_id in bad_ids)
        raise ScanError(
            f"{scan.dataset}: the scan found {len(errors)} problems that stop the run:\n"
            f"{summarise(errors)}\n"
            f"Fix the files named above, or re-run with on_problem='skip' (--on-problem skip) to "
            f"drop the {affected} affected clips of {len(scan.records)} and go on."
        )
    kept = [r for r in scan.records if r.clip_id not in bad_ids]
    if on_problem == "skip" and len(kept) < len(scan.records):
        log.warning("%s: skipping %d of %d clips with problems", scan.dataset,
                    len(scan.records) - len(kept), len(scan.records))
    if not kept:
        raise ScanError(
            f"{scan.dataset}: no usable clips left after dropping those with problems:\n"
            f"{summarise(errors)}\nFix the annotation files or the dataset path."
        )
    return dataclasses.replace(scan, records=kept, problems=list(scan.problems))
