"""A class protocol smaller than the cache's: the same cache read without some classes.

MAFW's 10-class protocol (``umbenet train --exclude-classes neutral``) trains, validates and tests
without the neutral clips and with 10 class prompts. Nothing is re-prepared: the 11-class cache is
read as it is, without the excluded classes' clips (they are not even read: ``read_without_classes``),
and the remaining labels are renumbered in
the cache's order (MAFW without neutral: anger 0 ... happiness 3, sadness 4 ... disappointment 9).
The run records the excluded names (run.json) and its class list (classes.json, the checkpoints'
config), and eval applies the same exclusion to the cache it reads.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from umbenet_cli.data.cache_parts import features_dir, table_spec
from umbenet_cli.data.cache_read import FeatureTable, read_features
from umbenet_cli.errors import UserError


class ClassSelectionError(UserError, ValueError):
    """Class names to exclude that the cache does not have, or that leave too few classes."""


def parse_class_names(text: str | None) -> tuple[str, ...]:
    """``"neutral, contempt"`` -> ``("neutral", "contempt")``; None or "" -> ()."""
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def kept_classes(classes: Sequence[str], exclude: Iterable[str], option: str = "--exclude-classes") -> tuple[str, ...]:
    """``classes`` without ``exclude`` (names matched case-insensitively), in the cache's order.

    Raises ClassSelectionError naming the unknown names and the valid ones, or when fewer than two
    classes would be left.
    """
    exclude = tuple(exclude)
    lowered = [c.lower() for c in classes]
    unknown = [x for x in exclude if x.lower() not in lowered]
    if unknown:
        raise ClassSelectionError(f"{option} {','.join(exclude)}: {unknown} not among the cache's classes "
                                  f"{list(classes)}; give names from that list, comma separated")
    drop = {x.lower() for x in exclude}
    kept = tuple(c for c in classes if c.lower() not in drop)
    if len(kept) < 2:
        raise ClassSelectionError(f"{option} {','.join(exclude)} leaves {list(kept)}: a classifier needs at least "
                                  f"2 classes; exclude fewer")
    return kept


def _renumber(sub: FeatureTable, classes: tuple[str, ...], kept: tuple[str, ...]) -> FeatureTable:
    """``sub`` (rows of the kept classes only) with labels renumbered into ``kept``."""
    new_index = _new_index(classes, kept)
    labels = new_index[sub.labels.astype(np.int64)].astype(sub.labels.dtype)
    meta = sub.meta
    if "label" in meta.column_names:
        meta = meta.set_column(meta.column_names.index("label"), "label", pa.array(labels, pa.int16()))
    return replace(sub, spec=replace(sub.spec, classes=kept), labels=labels, meta=meta)


def _new_index(classes: tuple[str, ...], kept: tuple[str, ...]) -> np.ndarray:
    """Old label -> new label, -1 for an excluded class."""
    new_index = np.full(len(classes), -1, dtype=np.int64)
    new_index[[classes.index(c) for c in kept]] = np.arange(len(kept))
    return new_index


def exclude_classes(table: FeatureTable, exclude: Iterable[str]) -> FeatureTable:
    """``table`` without the clips of the ``exclude`` classes, labels renumbered into the kept
    classes (``spec.classes`` reduced to them). With nothing to exclude, ``table`` itself.

    The kept rows are copied (``take``); for a cache on disk ``read_without_classes`` reads them
    alone instead."""
    exclude = tuple(exclude)
    if not exclude:
        return table
    classes = tuple(table.spec.classes)
    kept = kept_classes(classes, exclude)
    rows = np.flatnonzero(_new_index(classes, kept)[table.labels.astype(np.int64)] >= 0)
    return _renumber(table.take(rows), classes, kept)


def read_without_classes(cache_dir: str | Path, exclude: Iterable[str]) -> FeatureTable:
    """The features table of ``cache_dir`` without the clips of the ``exclude`` classes, labels
    renumbered as ``exclude_classes`` does. The excluded clips are never read: the tensors are
    read once, into arrays of the kept clips only (at MAFW's size the audio alone is ~2.3 GB, so
    reading the whole table and copying its kept rows would hold it nearly twice)."""
    exclude = tuple(exclude)
    spec = table_spec(features_dir(cache_dir))
    if not exclude or spec is None:  # nothing to leave out; or no cache, which read_features reports
        return read_features(cache_dir)
    classes = tuple(spec.classes)
    kept = kept_classes(classes, exclude)
    sub = read_features(cache_dir, labels=[classes.index(c) for c in kept])
    return _renumber(sub, classes, kept)
