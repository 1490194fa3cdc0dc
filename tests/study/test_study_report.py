"""`umbenet report runs/STUDY`: the plan's tables in the paper's layout, folds merged, the paper's
numbers beside ours, incomplete cells marked."""
from __future__ import annotations

from umbenet_cli.study import state as S
from umbenet_cli.study.matrix import expand
from umbenet_cli.study.plans import load_plan
from umbenet_cli.study.results import build_study_report
from tests.reporting.helpers import MAFW, fmt, handmade_run, table_after

SUBSETS = [("video",), ("audio",), ("text",), ("video", "text"), ("video", "audio"), ("video", "audio", "text")]


def _score(fold: int, classes: int, mods: tuple[str, ...]) -> tuple[float, float, float, float]:
    base = 0.1 * len(mods) + 0.01 * fold + (0.05 if classes == 10 else 0.0)
    return base, base + 0.1, base - 0.02, base + 0.08


def _fake_study(tmp_path, plan_name: str, skip: set[str]) -> tuple:
    """study.json + hand-made evaluated run folders; fold-runs in ``skip`` stay pending."""
    plan = load_plan(plan_name, "tiny", {})
    study = tmp_path / "runs" / plan_name
    runs = expand(plan, study, tmp_path / "cache", "tiny", {}, (1, 2), (11, 10))
    S.reconcile(study, {"name": plan.name, "source": plan.source, "runs": [r.to_dict() for r in plan.runs]}, {},
                runs, extend=False)
    for fr in runs:
        if fr.key in skip:
            continue
        spec = plan.run(fr.run)
        classes = MAFW if fr.classes == 11 else tuple(c for c in MAFW if c != "neutral")
        evaluable = [m for m in SUBSETS if set(m) <= set(spec.modalities)]
        handmade_run(fr.run_dir.parent, fr.run_dir.name, {m: _score(fr.fold, fr.classes, m) for m in evaluable},
                     classes=classes, trained=spec.modalities, folds=(fr.fold,), stage=spec.stage,
                     excluded=() if fr.classes == 11 else ("neutral",))
        S.update(study, fr.key, state="done")
    return study, runs


def test_table3_in_the_papers_layout_with_incomplete_cells_marked(tmp_path, capsys):
    study, _ = _fake_study(tmp_path, "table3", skip={"fold2/subset-A"})
    md = build_study_report(study, out=tmp_path / "report").read_text()
    rows = table_after(md, "Table 3")
    v = next(r for r in rows if r["Model"] == "trained on the subset" and r["Modalities"] == "V")
    assert v["UAR 11 cl."] == fmt([_score(1, 11, ("video",))[0], _score(2, 11, ("video",))[0]])
    assert v["WAR 10 cl."] == fmt([_score(1, 10, ("video",))[1], _score(2, 10, ("video",))[1]])
    assert v["paper UAR 11"].startswith("41.00 (Δ ")  # the paper's 11-class V row, trained block
    a = next(r for r in rows if r["Model"] == "trained on the subset" and r["Modalities"] == "A")
    assert a["UAR 11 cl."] == f"{fmt([_score(1, 11, ('audio',))[0]])} [1/2 folds]"
    missing_t = next(r for r in rows if r["Model"].startswith("full model") and r["Modalities"] == "T")
    assert missing_t["Run"] == "full" and missing_t["UAR 11 cl."] == fmt([_score(f, 11, ("text",))[0] for f in (1, 2)])
    assert [r["Modalities"] for r in rows].count("V+A+T") == 2  # trained full model, and its missing block row
    assert "report written" in capsys.readouterr().out


def test_ablation_table_of_the_arms(tmp_path):
    study, _ = _fake_study(tmp_path, "ablation", skip=set())
    md = build_study_report(study, out=tmp_path / "report").read_text()
    rows = {r["Arm"]: r for r in table_after(md, "Training-strategy ablation")}
    assert list(rows) == ["two_stage", "one_stage", "one_stage_all_modalities", "two_stage_carry_all",
                          "two_stage_carry_none"]
    full = ("video", "audio", "text")
    assert rows["one_stage"]["UAR 11 cl."] == fmt([_score(f, 11, full)[0] for f in (1, 2)])
    assert rows["one_stage"]["paper UAR 11"].startswith("52.85")  # Table 4's 1-stage row
    assert rows["two_stage_carry_all"]["paper WAR 10"] == "—"
