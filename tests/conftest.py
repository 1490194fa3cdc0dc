"""Test tiers: `slow` and `gpu` tests are skipped unless asked for (torchtune's convention)."""
from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")
    parser.addoption("--run-gpu", action="store_true", help="run tests marked gpu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker in ("slow", "gpu"):
        if config.getoption(f"--run-{marker}"):
            continue
        skip = pytest.mark.skip(reason=f"{marker} test: pass --run-{marker} to run it")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    # No test may download anything, and the tiny backbone is written to a per-run folder.
    import os
    import tempfile

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("UMBENET_HOME", tempfile.mkdtemp(prefix="umbenet-test-home-"))
