"""Training data from the feature cache: folds, a validation split, batches.

Which modalities each stage presents is decided in ``training.two_stage``.

Everything random here is a pure function of (seed, stage, epoch, step), never of global state:
a resumed run, or a run split over several processes, sees exactly the batches and modality
draws of an uninterrupted single-process run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from umbenet_cli.data.cache_read import FeatureTable
from umbenet_cli.errors import UserError
from umbenet_cli.model.config import MODALITIES
from umbenet_cli.model.umbenet import Batch


class DataError(UserError, ValueError):
    """The cache cannot provide what the run asks for."""


@dataclass(frozen=True)
class Splits:
    """Row indices into the feature table."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    name: str  # e.g. "fold 3" or "train/test"


def protocol_folds(table: FeatureTable) -> list[int]:
    """The folds a cache defines (empty for single-split datasets)."""
    return sorted(int(f) for f in np.unique(table.folds) if f >= 0)


def failed_clips(table: FeatureTable) -> np.ndarray:
    """bool [N]: clips whose prep status is ``failed`` (their media could not be read).

    A failed clip takes part in nothing (training, validation, test, any modality subset), even
    where a modality of it came from the annotations (e.g. a MAFW caption of a 0-byte video):
    the cache's copy of the dataset lacks the clip, and scoring its caption alone would let a
    damaged copy change the text rows only. Caches written by this version's prep hold no
    modality for a failed clip; older caches may, hence this check.
    """
    if "status" not in table.meta.column_names:
        return np.zeros(len(table), dtype=bool)
    return np.asarray(table.meta.column("status").to_pylist(), dtype=object) == "failed"


def make_splits(table: FeatureTable, fold: int | None, val_fraction: float, seed: int) -> Splits:
    """Test = the fold's test clips (or split == "test"); validation from the rest; the test fold
    never takes part in training or selection.

    Validation: the clips the cache marks ``split == "val"`` among this split's training clips
    (a manifest row with ``split=val`` and ``fold=k`` validates folds j != k and is a test clip
    of fold k only), else, when there are none, a stratified, seeded ``val_fraction`` of them.
    Failed clips (``failed_clips``) and clips with no modality are in no split.
    """
    usable = table.presence.any(axis=1) & ~failed_clips(table)
    folds = protocol_folds(table)
    splits = np.asarray([s or "" for s in table.splits])
    if folds:
        if fold is None or fold not in folds:
            raise DataError(f"--fold {fold}: this cache defines folds {folds}; pick one of them (or 'all')")
        test = usable & (table.folds == fold)
        trainval = usable & (table.folds >= 0) & (table.folds != fold)
        name = f"fold {fold}"
    else:
        if fold is not None:
            raise DataError(f"--fold {fold}: this cache has no folds (it has a train/test split); leave --fold out")
        if not (splits != "").any():
            raise DataError("this cache assigns its clips to no split and no fold (a manifest without a `split` "
                            "or `fold` column?): add a `split` column (train / val / test) or a `fold` column "
                            "(1..k) to the manifest and run `umbenet prep` again")
        test = usable & (splits == "test")
        trainval = usable & np.isin(splits, ["train", "val"])
        name = "train/test"
    trainval_idx = np.flatnonzero(trainval)
    given_val = np.flatnonzero(trainval & (splits == "val"))
    if len(given_val):
        val = given_val
    else:
        val = _stratified(trainval_idx, table.labels, val_fraction, seed)
    train = np.setdiff1d(trainval_idx, val)
    classes = table.spec.classes
    counts = np.bincount(table.labels[train], minlength=len(classes))
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise DataError(f"{name}: no training clips for class(es) {empty}; a model cannot learn a class "
                        f"it never sees. Check the cache (umbenet prep summary) or the fold.")
    if len(np.flatnonzero(test)) == 0:
        raise DataError(f"{name}: no test clips in this cache")
    return Splits(train=train, val=np.sort(val), test=np.flatnonzero(test), name=name)


def _stratified(idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels[idx]):
        members = idx[labels[idx] == c]
        n = int(round(fraction * len(members)))
        if len(members) >= 2:
            n = min(max(n, 1), len(members) - 1)  # keep at least one clip of each class for training
        else:
            n = 0
        picked.append(rng.permutation(members)[:n])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def step_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator that depends only on (seed, keys): the same draws in any process, any resume."""
    return np.random.default_rng([seed, *keys])


def epoch_order(train: np.ndarray, seed: int, stage: int, epoch: int) -> np.ndarray:
    return step_rng(seed, stage, epoch, 0).permutation(train)


def modality_mask(names: tuple[str, ...]) -> np.ndarray:
    return np.array([m in names for m in MODALITIES])


def upload(x: np.ndarray, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``x`` on ``device`` as ``dtype``. To a GPU: from pinned memory without blocking, in the
    array's own dtype (the cache's float16 crosses the bus at half the bytes) and converted there."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    elif t.device != device:
        t = t.to(device)
    return t if dtype is None else t.to(dtype)


def make_batch(table: FeatureTable, rows: np.ndarray, present: np.ndarray, device: torch.device) -> Batch:
    """Tensors for ``rows`` with the presence mask ``present`` [B, 3] (every clip with at least one
    modality: checked here, on the host, so the model need not sync to check it on a GPU)."""
    device = torch.device(device)
    if len(present) and not present.any(axis=1).all():
        raise DataError(f"{int((~present.any(axis=1)).sum())} clip(s) of this batch have no modality present; "
                        f"leave them out (training keeps only clips that have one of the run's modalities)")
    T = table.frame_emb.shape[1]
    n_valid = table.n_valid_frames[rows].astype(np.int64)
    frame_mask = np.arange(T)[None, :] < n_valid[:, None]
    S = table.audio.shape[1]
    audio_len = np.where(table.audio_num_samples[rows] > 0, table.audio_num_samples[rows], S)
    f32 = torch.float32
    return Batch(
        present=upload(present, device),
        frame_emb=upload(table.frame_emb[rows], device, f32),
        frame_mask=upload(frame_mask, device),
        scene_emb=upload(table.scene_emb[rows], device, f32) if table.scene_emb is not None else None,
        audio=upload(table.audio[rows], device, f32),
        audio_len=upload(audio_len.astype(np.int64), device),
        text_emb=upload(table.text_emb[rows], device, f32),
    )
