"""``umbenet report``: evaluated runs gathered into one Markdown + HTML report with figures.

    from umbenet_cli.reporting import build_report
    result = build_report(["runs/mafw"], out="reports/mafw")   # -> ReportResult (paths written)

Submodules: ``collect`` (find and read runs), ``tables`` (paper-style tables), ``figures`` and
``pool_figures`` (PNGs), ``render`` (Markdown/HTML), ``published`` (the paper's numbers as data).
Never imports torch or Typer.
"""
from umbenet_cli.reporting.collect import Experiment, ReportError, collect_runs
from umbenet_cli.reporting.published import PUBLISHED, TABLE4, Published, PoolAblation
from umbenet_cli.reporting.report import ReportResult, build_report

__all__ = ["Experiment", "PUBLISHED", "PoolAblation", "Published", "ReportError", "ReportResult", "TABLE4",
           "build_report", "collect_runs"]
