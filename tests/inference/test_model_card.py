"""The model card's fallback command line (no commands.txt): it rebuilds the run's config."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from umbenet_cli.inference.model_card import config_options, reconstructed_command
from umbenet_cli.model.config import UMBEnetConfig
from umbenet_cli.training.options import TrainOptions

SETS = {"pool.size": "4", "optim.lr": "0.0003", "sff.l1_lambda": "1e-05", "backbone": "/data/my clip"}


def run_json(preset: str | None, sets: dict[str, str], **options) -> dict:
    """run.json as `umbenet train` writes it."""
    opts = TrainOptions(cache=Path("/data/cache"), run_dir=Path("/runs/r1"), fold="1",
                        model=UMBEnetConfig.preset(preset or "tiny", **sets, classes="a,b,c"),
                        extra={"preset": preset} if preset else {}, **options)
    return json.loads(opts.to_json())


def parse(line: str) -> tuple[str, dict[str, str]]:
    """(--preset, {--set key: value}) of a command line, as the shell would split it."""
    words = shlex.split(line.split("  #")[0])
    preset = words[words.index("--preset") + 1]
    sets = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--set")
    return preset, sets


@pytest.mark.parametrize("recorded_preset", ["tiny", None])  # None: a run.json from before presets were recorded
def test_fallback_command_carries_the_set_options(recorded_preset):
    run = run_json(recorded_preset, SETS, exclude_classes=("d",))
    line = reconstructed_command(run)
    preset, sets = parse(line)
    assert preset == "tiny" and sets == {**SETS, "sff.l1_lambda": str(float(SETS["sff.l1_lambda"]))}
    assert "--set 'backbone=/data/my clip'" in line and "--exclude-classes d" in line and "#" not in line
    # The line rebuilds the run's config (classes come from --cache and --exclude-classes).
    rebuilt = UMBEnetConfig.preset(preset, **sets, classes="a,b,c")
    assert rebuilt == UMBEnetConfig.from_saved(run["model"])


def test_fallback_command_of_a_run_without_set_options():
    preset, sets, unsaid = config_options(run_json("tiny", {})["model"], "tiny")
    assert (preset, sets, unsaid) == ("tiny", [], [])
    assert "--set" not in reconstructed_command(run_json("tiny", {}))


def test_fallback_command_names_what_set_cannot_spell():
    run = run_json("tiny", {"pool.size": "4"})
    run["model"]["backbone"] = None  # no --set spelling for None
    line = reconstructed_command(run)
    assert "--set pool.size=4" in line
    assert line.endswith("# plus backbone as in config.json (--set has no spelling for them)")
