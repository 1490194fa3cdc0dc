"""Stage 2 --init-from another run with its own pool.transfer (the carry-all / carry-none arms of
`umbenet study run ablation`): the rule decides what is carried, not the weights, so stage 1 loads."""
from __future__ import annotations

import json

import pytest

from umbenet_cli.cli import main

POOL = ["--set", "pool.size=8", "--set", "pool.top_k=2", "--set", "optim.batch_size=16"]


@pytest.mark.parametrize("rule,carried", [("all", 8), ("none", 0)])
def test_stage2_from_another_runs_stage1_with_another_rule(synthetic_cache, tmp_path, rule, carried):
    base = ["train", "--cache", str(synthetic_cache), "--runs-dir", str(tmp_path), "--preset", "tiny", "--fold", "1",
            "--max-steps", "2", "--logger", "none", *POOL]
    assert main([*base, "--name", "s1", "--stage", "1"]) == 0
    assert main([*base, "--name", f"carry-{rule}", "--stage", "2", "--init-from", str(tmp_path / "s1"),
                 "--set", f"pool.transfer={rule}"]) == 0
    init = json.loads((tmp_path / f"carry-{rule}" / "fold1" / "stage2" / "init.json").read_text())
    assert init["rule"] == rule and init["carried"] == carried
