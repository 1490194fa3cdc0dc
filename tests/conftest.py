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
            # The marker itself, not item.keywords: keywords also hold the names of the folders
            # above the test (a checkout under .../gpu/ would skip every test).
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    # No test may download anything, and the tiny backbone is written to a per-run folder.
    import os
    import tempfile

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if "UMBENET_HOME" not in os.environ:
        config._umbenet_home = tempfile.mkdtemp(prefix="umbenet-test-home-")  # removed at the end
        os.environ["UMBENET_HOME"] = config._umbenet_home
    # rich wraps at 80 columns when not on a terminal; wide lines keep messages greppable.
    os.environ["COLUMNS"] = "200"


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the per-run home this session made (the tiny backbone, ~10 MB a run)."""
    import os
    import shutil

    home = getattr(config, "_umbenet_home", None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
        if os.environ.get("UMBENET_HOME") == home:
            del os.environ["UMBENET_HOME"]


@pytest.fixture(scope="session")
def sample_cache(tmp_path_factory):
    """`umbenet prep mafw sample_data/mafw --preset tiny`, once per test session (read-only)."""
    from pathlib import Path

    from umbenet_cli.cli import main

    out = tmp_path_factory.mktemp("mafw-cache")
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "mafw"
    assert main(["prep", "mafw", str(sample), "--out", str(out), "--preset", "tiny"]) == 0
    return out


@pytest.fixture(scope="session")
def train_tiny_run(sample_cache):
    """``train_tiny_run(runs_dir)``: a tiny one-stage run (2 steps, fold 1) on the sample cache,
    trained into ``runs_dir/r``; each caller gets its own run folder."""
    from umbenet_cli.cli import main

    def train(runs):
        assert main(["train", "--cache", str(sample_cache), "--runs-dir", str(runs), "--preset", "tiny",
                     "--name", "r", "--fold", "1", "--stage", "one", "--max-steps", "2"]) == 0
        return runs / "r"
    return train


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """A learnable 4-class synthetic cache (tiny backbone widths), 5 folds, some modalities missing."""
    from umbenet_cli.data.synthetic import SyntheticSpec, write_synthetic_cache
    from umbenet_cli.model import load_backbone
    from umbenet_cli.model.config import TINY_BACKBONE

    out = tmp_path_factory.mktemp("synthetic-cache")
    spec = SyntheticSpec(classes=("happy", "sad", "neutral", "angry"), clips_per_class=20)
    return write_synthetic_cache(out, spec, TINY_BACKBONE, load_backbone(TINY_BACKBONE).fingerprint())
