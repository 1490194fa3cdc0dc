"""``umbenet study status runs/STUDY``: one line per fold-run, readable at 80 columns."""
from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from umbenet_cli.study import jobs as J
from umbenet_cli.study import state as S
from umbenet_cli.study.slurm import held

STYLE = {"done": "green", "failed": "red", "running": "cyan", "interrupted": "yellow", "pending": "dim"}


def duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}" if s >= 3600 else f"{s // 60}m{s % 60:02d}" if s >= 60 else f"{s}s"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def status_table(study_dir: Path) -> tuple[Table, list[str]]:
    """(the table, one line per failed run with its last error)."""
    data = S.read(study_dir)
    table = Table(title=f"study {data['name']} ({data['plan']['name']}): {study_dir}", box=box.SIMPLE_HEAD,
                  caption="ep: epochs trained (all stages); val: best validation UAR; UAR/WAR: test, full "
                          "subset, %", title_justify="left", caption_justify="left", pad_edge=False)
    for col in ("run", "fold", "state", "ep", "val", "UAR", "WAR", "time"):
        table.add_column(col, overflow="fold", justify="left" if col in ("run", "state") else "right",
                         ratio=3 if col == "run" else None)
    errors = []
    for key, rec in data["runs"].items():
        name = rec["run"] + ("-10cl" if rec["classes"] == 10 else "")
        p = J.progress(Path(rec["run_dir"]), rec["fold"])
        state = rec["state"]
        table.add_row(name, "-" if rec["fold"] is None else str(rec["fold"]),
                      f"[{STYLE.get(state, '')}]{state}[/]", str(p["epochs"]), pct(p["val_uar"]), pct(p["test_uar"]),
                      pct(p["test_war"]), duration(S.elapsed(rec)))
        if state == "failed" and rec.get("error"):
            errors.append(f"{key}: {rec['error']}")
    return table, errors


def print_status(study_dir: Path, console: Console) -> dict[str, int]:
    """Print the table (and failures); returns how many fold-runs are in each state."""
    table, errors = status_table(study_dir)
    console.print(table)
    for line in errors:
        console.print(f"[red]failed[/] {line}", highlight=False, soft_wrap=False, overflow="fold")
    runs = S.read(study_dir)["runs"]
    holding = held({"runs": runs}, list(runs))
    if holding:
        console.print(f"with Slurm ({len(holding)}): " + ", ".join(f"{k} job {j}" for k, j in holding.items()),
                      highlight=False, soft_wrap=False, overflow="fold")
    states = [r["state"] for r in runs.values()]
    counts = {s: states.count(s) for s in S.STATES if states.count(s)}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()) + f" (of {len(states)})", highlight=False)
    return counts
