"""Checkpoint folders: weights (safetensors), the resolved config, and what they were built on.

A checkpoint is one folder:

    model.safetensors   every weight and buffer except the frozen CLIP towers
    config.json         the resolved UMBEnetConfig: the model can be rebuilt from it alone
    meta.json           format version, backbone id + fingerprint + widths, library versions, extras
    COMPLETE            written last; a folder without it is never loaded

Saves are atomic: everything is written to a temporary sibling folder, flushed, and renamed into
place, so a kill during a save leaves the previous checkpoint (or none), never a partial one that
loads. Loads are strict: missing, unexpected and mis-shaped tensors are all reported.
"""
from __future__ import annotations

from umbenet_cli.errors import UserError

import json
import logging
import os
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from umbenet_cli.model.backbone import Backbone, load_backbone
from umbenet_cli.model.config import UMBEnetConfig

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
MARKER = "COMPLETE"
FILES = ("config.json", "meta.json", "model.safetensors")  # what a complete checkpoint holds
# Config keys (as in UMBEnetConfig.diff) weights do not depend on. pool.transfer(_alpha) decide
# what stage 2 carries from stage 1, so a stage 2 started --init-from another run with its own
# rule (the carry-all / carry-none arms) loads that run's stage 1.
NOT_WEIGHT_KEYS = ("optim.", "backbone:", "pool.transfer")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be loaded as asked; the message lists every reason."""


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())


def atomic_folder_write(folder: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary folder, then move it to ``folder`` atomically."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        write(tmp)
        (tmp / MARKER).write_text("ok\n")
        _fsync_tree(tmp)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def save_checkpoint(model, folder: str | Path, extra: dict | None = None,
                    write_extra: Callable[[Path], None] | None = None) -> Path:
    """Save ``model`` (an UMBEnet) to ``folder``; ``write_extra(tmp)`` may add files (optimiser...)."""
    import transformers

    bb: Backbone = model.backbone
    meta = {
        "format_version": FORMAT_VERSION,
        "backbone": {"name": bb.name, "fingerprint": bb.fingerprint(), **asdict(bb.dims)},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "extra": extra or {},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.trainable_state_dict().items()}

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(model.config.to_json())
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if write_extra is not None:
            write_extra(tmp)

    return atomic_folder_write(folder, write)


def read_config(folder: str | Path) -> tuple[UMBEnetConfig, dict]:
    """(config, meta) of a complete checkpoint folder, without its weights; CheckpointError otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {folder}")
    if not (folder / MARKER).is_file():
        raise CheckpointError(_not_a_checkpoint(folder))
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"the checkpoint {folder} is damaged: {', '.join(missing)} "
                              f"{'is' if len(missing) == 1 else 'are'} missing ({MARKER} is there, so the save "
                              f"finished and the file was removed or not copied since). Fix: copy the folder "
                              f"again from where it was trained, or use the run's other checkpoint "
                              f"(--checkpoint {'last' if folder.name == 'best' else 'best'})")
    config = UMBEnetConfig.from_saved(json.loads((folder / "config.json").read_text()))
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{folder}: checkpoint format {meta.get('format_version')} is not "
                              f"{FORMAT_VERSION}, the one this version of umbenet reads")
    return config, meta


def _not_a_checkpoint(folder: Path) -> str:
    """Why a folder without the marker is not a checkpoint, and which folder to pass instead."""
    found = sorted(p.parent for p in folder.glob(f"*/*/checkpoints/*/{MARKER}")) or \
        sorted(p.parent for p in folder.glob(f"checkpoints/*/{MARKER}"))
    if (folder / "run.json").is_file() or (folder / "checkpoints").is_dir():
        what = "a training run" if (folder / "run.json").is_file() else "a stage folder of a run"
        where = (f" Its checkpoints: {', '.join(str(p) for p in found[:6])}{' ...' if len(found) > 6 else ''}"
                 if found else " It holds no complete checkpoint yet (training never saved one).")
        return f"{folder} is {what}, not a checkpoint folder: pass one of its checkpoint folders.{where}"
    if (folder / "model.safetensors").is_file() or folder.name.startswith("."):
        return (f"{folder} is not a complete checkpoint (no {MARKER} marker): its save was interrupted. "
                f"Use another checkpoint of the run.")
    return (f"{folder} is not a checkpoint folder (no {MARKER}, config.json or model.safetensors): pass a "
            f"folder written by UMBEnet.save or `umbenet train` (runs/<name>/<fold>/<stage>/checkpoints/best)")


def read_checkpoint(folder: str | Path) -> tuple[UMBEnetConfig, dict, dict[str, torch.Tensor]]:
    """(config, meta, tensors) of a complete checkpoint folder; CheckpointError otherwise."""
    config, meta = read_config(folder)
    return config, meta, load_file(str(Path(folder) / "model.safetensors"))


def load_weights(model, folder: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint into an existing model, strictly. Returns the checkpoint's meta."""
    config, meta, tensors = read_checkpoint(folder)
    problems = []
    # The schedule does not shape weights, and the backbone is matched on its fingerprint below
    # (its id is a label: a hub id and a local copy of that checkpoint are the same backbone).
    diff = [d for d in config.diff(model.config) if not d.startswith(NOT_WEIGHT_KEYS)]
    if diff:
        problems.append("its config differs from the model's (checkpoint != model):\n      "
                        + "\n      ".join(diff))
    fp = model.backbone.fingerprint()
    if meta["backbone"]["fingerprint"] != fp:
        problems.append(f"it was trained on backbone {meta['backbone']['name']!r} (fingerprint "
                        f"{meta['backbone']['fingerprint']}), the model has {model.backbone.name!r} ({fp})")
    own = model.trainable_state_dict()
    if "pool.query_counts" in own and "pool.query_counts" not in tensors and "pool.counts" in tensors:
        # Saved before the pool kept the query's own choices apart (balancing on): the balanced
        # counts are all there is, so stage 2's transfer will see every prompt as used (and warn).
        log.warning("%s has no pool.query_counts (saved by an earlier version): using pool.counts, "
                    "which include the balancing factor", folder)
        tensors = {**tensors, "pool.query_counts": tensors["pool.counts"]}
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [f"{k}: {tuple(tensors[k].shape)} != {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(tensors)) if tensors[k].shape != own[k].shape]
    if missing:
        problems.append(f"missing keys: {missing}")
    if unexpected:
        problems.append(f"unexpected keys: {unexpected}")
    if shapes:
        problems.append(f"shape mismatches (checkpoint != model): {shapes}")
    if problems:
        raise CheckpointError(f"cannot load {folder} into this model:\n  - " + "\n  - ".join(problems)
                              + "\n  Fix: build the model from the checkpoint itself, UMBEnet.load(folder).")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(tensors[k].to(device=v.device, dtype=v.dtype))
    return meta


def load_checkpoint(folder: str | Path, backbone: Backbone | None = None,
                    map_location: str | torch.device = "cpu"):
    """Rebuild the model a checkpoint folder describes and load its weights strictly.

    ``folder`` may also be a Hugging Face Hub repo id (``owner/name[@revision]``) holding an
    exported model folder: it is fetched into the Hub cache first (``model.hub``)."""
    from umbenet_cli.model.hub import resolve_model_folder
    from umbenet_cli.model.umbenet import UMBEnet

    folder = resolve_model_folder(folder)
    config, _ = read_config(folder)
    model = UMBEnet(config, backbone=backbone if backbone is not None else load_backbone(config.backbone))
    load_weights(model, folder)
    return model.to(map_location)
