"""Plans: the paper's tables and the ablation as runs, TOML plans checked in full."""
from __future__ import annotations


import pytest

from umbenet_cli.reporting.published import TABLE4
from umbenet_cli.study.matrix import expand
from umbenet_cli.study.plans import PlanError, load_plan

PAPER_POOL = {"pool.length": "32", "inherent_length": "32", "pool.size": "32", "pool.top_k": "5"}


def test_table3_trains_the_five_subsets_and_the_full_model():
    plan = load_plan("table3", "tiny", {})
    mods = {r.name: r.modalities for r in plan.runs}
    assert sorted(mods.values(), key=len) == [("video",), ("audio",), ("text",), ("video", "text"),
                                              ("video", "audio"), ("video", "audio", "text")]
    assert not any(m == ("audio", "text") for m in mods.values())  # the paper has no A+T model
    full = plan.run("full")
    assert {r["subset"] for r in full.roles} == {"V+A+T", "missing"}


def test_table4_is_the_published_cells_and_trains_the_full_model_once():
    cells = {(a.length, a.size, a.top_k) for a in TABLE4 if a.strategy == "2-stage"}
    plan = load_plan("table4", "tiny", PAPER_POOL)  # the full model has the paper's pool 64/32/5
    roles = {(r["length"], r["size"], r["top_k"], r["strategy"]): run.name for run in plan.runs for r in run.roles}
    assert {k[:3] for k, v in roles.items() if k[3] == "2-stage"} == cells
    assert roles[(64, 32, 5, "2-stage")] == "full"  # no pool-L64-N32-K5 twin
    assert len(plan.runs) == len(cells) + 1  # + the one-stage arm
    # Length is the total prompt length, split in halves between pool and inherent prompts.
    run = plan.run("pool-L32-N8-K5")
    assert run.sets == {"pool.length": "16", "inherent_length": "16", "pool.size": "8", "pool.top_k": "5"}
    # With another pool (tiny's), the 64/32/5 cell is a run of its own.
    tiny = load_plan("table4", "tiny", {})
    assert "pool-L64-N32-K5" in {r.name for r in tiny.runs}


def test_paper_is_both_tables_with_the_full_model_shared():
    plan = load_plan("paper", "tiny", PAPER_POOL)
    names = [r.name for r in plan.runs]
    assert len(names) == len(set(names)) == 6 + 8 + 1
    assert {r["table"] for r in plan.run("full").roles} == {"3", "4"}


def test_ablation_arms_at_equal_epoch_budgets(tmp_path):
    plan = load_plan("ablation", "tiny", {})
    assert [r.name for r in plan.runs] == ["two_stage", "one_stage", "one_stage_all_modalities",
                                           "two_stage_carry_all", "two_stage_carry_none"]
    runs = expand(plan, tmp_path / "s", tmp_path / "cache", "tiny", {"optim.max_epochs": "3"}, (1, 2), (11, 10))
    assert len(runs) == 20
    by_key = {r.key: r for r in runs}
    one = " ".join(by_key["fold2/one_stage-10cl"].train)
    assert "--set optim.max_epochs=6 --stage one" in one and "--exclude-classes neutral" in one
    assert "--all-modalities" in by_key["fold1/one_stage_all_modalities"].train
    carry = by_key["fold2/two_stage_carry_none-10cl"]
    assert carry.after == "fold2/two_stage-10cl"
    assert carry.train[carry.train.index("--init-from") + 1] == str(tmp_path / "s" / "fold2" / "two_stage-10cl")
    assert "pool.transfer=none" in carry.train and "optim.max_epochs=3" in " ".join(carry.train)
    order = [r.key for r in runs]
    assert all(order.index(r.after) < order.index(r.key) for r in runs if r.after)


def test_a_toml_plan_is_checked_in_full_before_anything_runs(tmp_path):
    plan = tmp_path / "bad.toml"
    plan.write_text('''
colour = "blue"
[[run]]
name = "a"
stage = "three"
modalities = "video,smell"
fold = 2
[[run]]
name = "b"
stage = "2"
init_from = "nowhere"
set = { "pool.size" = "many", "pool.colour" = 1 }
learning_rate = 3
''')
    with pytest.raises(PlanError) as exc:
        load_plan(str(plan), "tiny", {})
    msg = str(exc.value)
    for says in ("'colour'", "stage = 'three'", "modalities", "'fold' is set for the whole study (--fold)",
                 "init_from = 'nowhere'", "pool.size", "pool.colour", "'learning_rate'"):
        assert says in msg, says


def test_a_toml_plan_runs_with_train_options(tmp_path):
    plan = tmp_path / "mine.toml"
    plan.write_text('''
[[run]]
name = "base"
[[run]]
name = "carry"
stage = 2
init-from = "base"
set = ["pool.transfer=all"]
[[run]]
name = "vt"
modalities = ["video", "text"]
seed = 3
set = { pool = { size = 4 } }
''')
    got = load_plan(str(plan), "tiny", {})
    assert got.name == "mine" and [r.name for r in got.runs] == ["base", "carry", "vt"]
    assert got.run("carry").init_from == "base" and got.run("carry").stage == "2"
    assert got.run("vt").sets == {"pool.size": "4"} and got.run("vt").seed == 3


def test_unknown_named_plan():
    with pytest.raises(PlanError, match="table3"):
        load_plan("table5", "tiny", {})
