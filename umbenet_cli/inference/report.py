"""How predictions are shown (rich tables) and saved (one JSON file, written atomically)."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from pipelines.asr import backend_for
from umbenet_cli.inference.predict import PredictOptions, VideoPrediction
from umbenet_cli.model.config import MODALITIES

BAR_WIDTH = 24


def _modality_cell(p: VideoPrediction, m: str) -> Text:
    if p.present.get(m):
        return Text("yes", style="green")
    return Text(f"no: {p.missing.get(m, '?')}", style="yellow")


def _prompts(p: VideoPrediction) -> str:
    """The pool prompts the video selected, by index: ``#5, #0`` (``-``: no pool, or no prediction)."""
    return "-" if p.selected_prompts is None else ", ".join(f"#{i}" for i in p.selected_prompts)


def _pool_line(p: VideoPrediction, pool_size: int | None) -> str:
    if p.selected_prompts is None:
        return "- (no prompt pool)"
    of = f", of the pool's {pool_size}" if pool_size else ""
    return f"{_prompts(p)} (selected by this video{of})"


def video_report(p: VideoPrediction, top: int, pool_size: int | None = None) -> Group:
    """One video: every class with its probability (the ``top`` most probable highlighted), then
    the modalities (and why the missing ones are), the transcript and the selected pool prompts.
    A video that could not be predicted: its name and the reason, once."""
    name = Path(p.path).name
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold", overflow="fold")
    info.add_column(overflow="fold")
    if not p.ok:  # every modality's reason is the error itself, or part of it: shown once
        info.add_row("video", name)
        info.add_row("error", Text(p.error or "", style="bold red"))
        return Group(info)
    # One unit in the terminal: percent with one decimal (the JSON keeps probabilities in [0, 1]).
    table = Table(title=f"{name}: {p.predicted} ({p.probabilities[p.predicted]:.1%})", title_justify="left")
    table.add_column("emotion", overflow="fold")
    table.add_column("probability %", justify="right", overflow="fold")
    table.add_column("", width=BAR_WIDTH)
    best = {c for c, _ in p.top(top)}
    for c, v in p.top(len(p.probabilities)):
        style = "bold green" if c == p.predicted else ("bold" if c in best else "dim")
        table.add_row(Text(c, style=style), Text(f"{100 * v:.1f}", style=style),
                      Text("█" * round(v * BAR_WIDTH), style="green" if c in best else "dim"))
    for m in MODALITIES:
        info.add_row(m, _modality_cell(p, m))
    info.add_row("transcript", "-" if p.transcript is None else f"{p.transcript!r} ({p.language or '?'})")
    info.add_row("pool prompts", _pool_line(p, pool_size))
    for note in p.notes:
        info.add_row("note", Text(note, style="dim"))
    return Group(table, info)


def folder_table(predictions: list[VideoPrediction], top: int, pool_size: int | None = None) -> Table:
    """One row per video: its ``top`` classes, the modalities given to the model and why the others
    were missing (or why the video could not be predicted), the transcript and the pool prompts it
    selected. Nothing is shortened: what does not fit wraps or folds inside its cell."""
    of = f"the pool's {pool_size}" if pool_size else "the pool's"
    table = Table(title=f"{len(predictions)} videos", title_justify="left", show_lines=True,
                  caption=f"pool prompts: which of {of} prompts (by index) each video selected",
                  caption_justify="left")
    for col in ("video", f"top {top} (%)", "modalities", "transcript", "pool prompts"):
        table.add_column(col, overflow="fold")
    for p in predictions:
        if p.ok:
            ranked = Text()
            for i, (c, v) in enumerate(p.top(top)):
                ranked.append(("\n" if i else "") + f"{c} {100 * v:.1f}", style="bold green" if i == 0 else "")
            modalities = Text()
            for i, m in enumerate(MODALITIES):
                line = m if p.present.get(m) else f"{m}: {p.missing.get(m, '?')}"
                modalities.append(("\n" if i else "") + line, style="green" if p.present.get(m) else "yellow")
        else:
            ranked = Text("error", style="bold red")
            modalities = Text(p.error or "", style="red")
        table.add_row(Path(p.path).name, ranked, modalities, "-" if p.transcript is None else p.transcript,
                      _prompts(p))
    return table


def print_predictions(predictions: list[VideoPrediction], classes: tuple[str, ...], top: int,
                      out: Console, folder: bool, pool_size: int | None = None) -> None:
    top = min(top, len(classes))
    if folder:
        out.print(folder_table(predictions, top, pool_size))
    else:
        for p in predictions:
            out.print(video_report(p, top, pool_size))


def write_json(path: Path, predictions: list[VideoPrediction], classes: tuple[str, ...], checkpoint: Path,
               opts: PredictOptions, note: str | None = None) -> Path:
    """``{"checkpoint", "classes", "asr_model", "asr_backend", "language", "videos": [one per video]}``,
    and ``"batch_query"`` (``note``) when a prediction depends on the other videos of its batch."""
    data = {"checkpoint": str(checkpoint), "classes": list(classes), "asr_model": opts.asr_model,
            "asr_backend": backend_for(opts.asr_model, opts.asr_backend) if opts.asr_model else None,
            "language": opts.language_code, "videos": [p.to_dict() for p in predictions]}
    if note:
        data["batch_query"] = note
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
