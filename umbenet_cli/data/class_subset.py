"""A class protocol smaller than the cache's: the same cache read without some classes.

MAFW's 10-class protocol (``umbenet train --exclude-classes neutral``) trains, validates and tests
without the neutral clips and with 10 class prompts. Nothing is re-prepared: the 11-class cache is
read as it is, the excluded classes' clips are taken out and the remaining labels renumbered in
the cache's order (MAFW without neutral: anger 0 ... happiness 3, sadness 4 ... disappointment 9).
The run records the excluded names (run.json) and its class list (classes.json, the checkpoints'
config), and eval applies the same exclusion to the cache it reads.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from umbenet_cli.data.cache_read import FeatureTable
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


def exclude_classes(table: FeatureTable, exclude: Iterable[str]) -> FeatureTable:
    """``table`` without the clips of the ``exclude`` classes, labels renumbered into the kept
    classes (``spec.classes`` reduced to them). With nothing to exclude, ``table`` itself."""
    exclude = tuple(exclude)
    if not exclude:
        return table
    classes = tuple(table.spec.classes)
    kept = kept_classes(classes, exclude)
    new_index = np.full(len(classes), -1, dtype=np.int64)
    new_index[[classes.index(c) for c in kept]] = np.arange(len(kept))
    rows = np.flatnonzero(new_index[table.labels.astype(np.int64)] >= 0)
    sub = table.take(rows)
    labels = new_index[sub.labels.astype(np.int64)].astype(table.labels.dtype)
    meta = sub.meta
    if "label" in meta.column_names:
        meta = meta.set_column(meta.column_names.index("label"), "label", pa.array(labels, pa.int16()))
    return replace(sub, spec=replace(table.spec, classes=kept), labels=labels, meta=meta)
