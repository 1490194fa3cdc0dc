"""Training: the paper's two-stage schedule over a feature cache. Never imports Typer."""
