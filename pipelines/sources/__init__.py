"""Dataset source adapters: a dataset root in, clip records and problems out, no media decoded.

Typical use (what ``umbenet prep mafw /raw`` does first)::

    scan = scan_source("mafw", "/raw")
    console.print(problems_table(scan))
    scan = apply_policy(scan, on_problem="stop")   # or "skip"
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.sources.dfew import scan_dfew
from pipelines.sources.ferv39k import scan_ferv39k
from pipelines.sources.mafw import scan_mafw
from pipelines.sources.manifest import scan_manifest
from pipelines.sources.records import PROBLEM_KINDS, ClipRecord, Problem, ScanError, SourceScan
from pipelines.sources.validate import apply_policy, problems_table

SOURCES: dict[str, Callable[..., SourceScan]] = {
    "mafw": scan_mafw,
    "dfew": scan_dfew,
    "ferv39k": scan_ferv39k,
    "manifest": scan_manifest,
}


def scan_source(name: str, root: str | Path, **options: Any) -> SourceScan:
    """Run the adapter called ``name`` on ``root`` (for "manifest": the manifest file).

    ``options`` go to the adapter (e.g. ``text="asr"`` for MAFW, ``media="frames"`` for DFEW).
    Raises ValueError naming the available sources for an unknown ``name``.
    """
    key = name.strip().lower()
    if key not in SOURCES:
        raise ValueError(f"unknown dataset source {name!r}; available sources = {sorted(SOURCES)}")
    return SOURCES[key](root, **options)


__all__ = [
    "PROBLEM_KINDS", "SOURCES", "ClipRecord", "Problem", "ScanError", "SourceScan",
    "apply_policy", "problems_table", "scan_dfew", "scan_ferv39k", "scan_mafw", "scan_manifest",
    "scan_source",
]
