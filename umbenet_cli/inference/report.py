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
TRANSCRIPT_CHARS = 60  # in the folder table; the JSON holds the whole transcript


def _modality_cell(p: VideoPrediction, m: str) -> Text:
    if p.present.get(m):
        return Text("yes", style="green")
    return Text(f"no: {p.missing.get(m, '?')}", style="yellow")


def _prompts(p: VideoPrediction) -> str:
    return "-" if p.selected_prompts is None else ", ".join(map(str, p.selected_prompts))


def video_report(p: VideoPrediction, top: int) -> Group:
    """One video: every class with its probability (the ``top`` most probable highlighted), then
    the modalities (and why the missing ones are), the transcript and the selected prompts."""
    name = Path(p.path).name
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    if not p.ok:
        info.add_row("video", name)
        info.add_row("error", Text(p.error or "", style="bold red"))
        for m in MODALITIES:
            info.add_row(m, _modality_cell(p, m))
        return Group(info)
    # One unit in the terminal: percent with one decimal (the JSON keeps probabilities in [0, 1]).
    table = Table(title=f"{name}: {p.predicted} ({p.probabilities[p.predicted]:.1%})", title_justify="left")
    table.add_column("emotion")
    table.add_column("probability %", justify="right")
    table.add_column("", width=BAR_WIDTH)
    best = {c for c, _ in p.top(top)}
    for c, v in p.top(len(p.probabilities)):
        style = "bold green" if c == p.predicted else ("bold" if c in best else "dim")
        table.add_row(Text(c, style=style), Text(f"{100 * v:.1f}", style=style),
                      Text("█" * round(v * BAR_WIDTH), style="green" if c in best else "dim"))
    for m in MODALITIES:
        info.add_row(m, _modality_cell(p, m))
    info.add_row("transcript", "-" if p.transcript is None else f"{p.transcript!r} ({p.language or '?'})")
    info.add_row("prompts", _prompts(p))
    for note in p.notes:
        info.add_row("note", Text(note, style="dim"))
    return Group(table, info)


def _short(text: str | None, n: int = TRANSCRIPT_CHARS) -> str:
    if text is None:
        return "-"
    return text if len(text) <= n else text[:n - 1] + "…"


def folder_table(predictions: list[VideoPrediction], top: int) -> Table:
    """One row per video: its ``top`` classes, the modalities given to the model, why the others
    were missing, the transcript (shortened; the JSON has it whole) and the selected prompts."""
    table = Table(title=f"{len(predictions)} videos", title_justify="left", show_lines=True)
    table.add_column("video", no_wrap=True)
    table.add_column(f"top {top} (%)", no_wrap=True)
    table.add_column("used")
    table.add_column("missing")
    table.add_column("transcript")
    table.add_column("prompts")
    for p in predictions:
        if p.ok:
            ranked = Text()
            for i, (c, v) in enumerate(p.top(top)):
                ranked.append(("\n" if i else "") + f"{c} {100 * v:.1f}", style="bold green" if i == 0 else "")
        else:
            ranked = Text("error", style="bold red")
        used = Text(", ".join(m for m in MODALITIES if p.present.get(m)) or "-", style="green")
        missing = Text("\n".join(f"{m}: {r}" for m, r in p.missing.items() if not p.present.get(m)),
                       style="yellow")
        if not p.ok:
            missing = Text(p.error or "", style="red")
        table.add_row(Path(p.path).name, ranked, used, missing, _short(p.transcript), _prompts(p))
    return table


def print_predictions(predictions: list[VideoPrediction], classes: tuple[str, ...], top: int,
                      out: Console, folder: bool) -> None:
    top = min(top, len(classes))
    if folder:
        out.print(folder_table(predictions, top))
    else:
        for p in predictions:
            out.print(video_report(p, top))


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
