"""The training summary and the epoch log line: percent, readable at 80 columns."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console

from umbenet_cli.training.run import summary_table


class _Opts:
    run_dir = Path("runs/demo/runs/demo-tiny")

    def split_dir(self, fold):
        return Path("/nonexistent")


def test_training_summary_fits_80_columns():
    results = [{"fold": 1, "stage": s, "epochs": 3, "global_step": 12, "best_epoch": 2, "best_val_uar": 0.0909,
                "best_val_war": 0.1, "stop_reason": "reached max_epochs=3", "seconds": 12} for s in ("stage1", "stage2")]
    console = Console(width=80, record=True)
    console.print(summary_table(_Opts(), results))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    flat = " ".join(text.split())
    assert "9.09" in flat and "1 stage2: reached max_epochs=3" in flat and "% at the best epoch" in flat
