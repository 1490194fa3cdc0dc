"""``umbenet export RUN --out DIR``: one trained model as a folder anyone can use.

The folder is a checkpoint folder (``UMBEnet.load(DIR)``, ``umbenet predict --run DIR``) with
what a reader of the model needs beside the weights::

    model.safetensors   the trained weights (everything but the frozen CLIP towers)
    config.json         the resolved UMBEnetConfig: the model is rebuilt from it alone
    meta.json           backbone id + weight fingerprint, library versions, where it came from
    classes.json        the class list, in the model's output order
    run.json            how the run was trained (options, resolved config, cache)
    eval-test.json      the run's test results (when the run was evaluated)
    README.md           the model card, Hugging Face convention (YAML front matter)
    COMPLETE            written last, as in every checkpoint

No optimiser state (``train_state.pt``) is exported: nothing in the folder is a pickle. Publish it
with huggingface_hub's own CLI: ``hf upload OWNER/NAME DIR .``
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from umbenet_cli.errors import UserError
from umbenet_cli.inference.locate import find_checkpoint
from umbenet_cli.inference.model_card import model_card
from umbenet_cli.model.checkpoint import atomic_folder_write, read_config

EXPORT_FILES = ("model.safetensors", "config.json", "meta.json", "classes.json", "run.json", "README.md")


class ExportError(UserError, ValueError):
    """An export that cannot be made as asked; names the input and the fix."""


def run_folder_of(checkpoint: Path) -> Path:
    """The run folder (the one holding run.json) above a checkpoint folder."""
    for parent in checkpoint.resolve().parents:
        if (parent / "run.json").is_file():
            return parent
    raise ExportError(f"{checkpoint} belongs to no run folder (no run.json above it): export a run "
                      f"written by `umbenet train`, e.g. `umbenet export runs/<name> --out DIR`")


def _read_json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError as exc:
        raise ExportError(f"cannot read {path} ({exc}); re-run the command that writes it") from None


def export_model(run: str | Path, out: str | Path, fold: int | None = None, checkpoint: str = "best",
                 force: bool = False) -> dict:
    """Write the model folder ``out`` from a run's checkpoint; returns what was exported.

    Args:
        run: a run folder (runs/<name>), or one of its stage or checkpoint folders.
        fold: the fold's model, for a run with several folds.
        checkpoint: "best" (best validation epoch) or "last".
        force: replace ``out`` when it already holds an exported model.
    """
    out = Path(out)
    ckpt = find_checkpoint(run, checkpoint, fold)
    run_dir = run_folder_of(ckpt)
    if out.exists() and any(out.iterdir()):
        if not (out / "README.md").is_file() or not (out / "model.safetensors").is_file():
            raise ExportError(f"--out {out} exists and is not an exported model: give a new or empty folder")
        if not force:
            raise ExportError(f"--out {out} already holds an exported model: pass --force to replace it, "
                              f"or give another folder")
    if out.resolve() in (ckpt.resolve(), *ckpt.resolve().parents):
        raise ExportError(f"--out {out} holds the checkpoint it would export; give a folder outside {run_dir}")
    config, meta = read_config(ckpt)
    stage_dir = ckpt.parent.parent
    split_name = stage_dir.parent.name
    source = {"run": run_dir.name, "split": split_name, "fold": int(split_name[4:]) if split_name.startswith("fold") else None,
              "stage": stage_dir.name, "checkpoint": ckpt.name, "global_step": meta.get("extra", {}).get("global_step")}
    run_json = _read_json(run_dir / "run.json") or {}
    eval_test = _read_json(run_dir / "eval-test.json")
    fold_eval = _read_json(stage_dir / "eval" / "test" / "results.json")
    stage_result = _read_json(stage_dir / "result.json")
    commands = (run_dir / "commands.txt").read_text().splitlines() if (run_dir / "commands.txt").is_file() else []
    card = model_card(config=config, meta=meta, source=source, run=run_json, eval_test=eval_test,
                      fold_eval=fold_eval, stage_result=stage_result, commands=commands)
    exported_meta = {**meta, "exported_from": source}

    def write(tmp: Path) -> None:
        shutil.copyfile(ckpt / "model.safetensors", tmp / "model.safetensors")
        (tmp / "config.json").write_text(config.to_json())
        (tmp / "meta.json").write_text(json.dumps(exported_meta, indent=2))
        (tmp / "classes.json").write_text(json.dumps(list(config.classes)))
        (tmp / "run.json").write_text(json.dumps(run_json, indent=2))
        if eval_test is not None:
            (tmp / "eval-test.json").write_text(json.dumps(eval_test, indent=2))
        (tmp / "README.md").write_text(card)

    atomic_folder_write(out, write)
    return {**source, "out": str(out), "from": str(ckpt), "evaluated": eval_test is not None}
