"""study.json: a changed plan is refused, --extend adds runs; the status table fits 80 columns."""
from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from umbenet_cli.study import state as S
from umbenet_cli.study.matrix import expand
from umbenet_cli.study.plans import load_plan
from umbenet_cli.study.status import print_status


def _study(tmp_path, sets=None, folds=(1,), classes=(11,), extend=False):
    plan = load_plan("ablation", "tiny", sets or {})
    runs = expand(plan, tmp_path / "ablation", tmp_path / "cache", "tiny", sets or {}, folds, classes)
    record = {"name": plan.name, "source": plan.source, "runs": [r.to_dict() for r in plan.runs]}
    return S.reconcile(tmp_path / "ablation", record, {}, runs, extend)


def test_a_changed_plan_is_refused_and_new_runs_need_extend(tmp_path):
    data = _study(tmp_path)
    assert len(data["runs"]) == 5 and {r["state"] for r in data["runs"].values()} == {"pending"}
    assert _study(tmp_path)["runs"].keys() == data["runs"].keys()  # the same request: accepted
    with pytest.raises(S.StudyError, match="other options for 5 run"):
        _study(tmp_path, sets={"optim.lr": "0.1"})
    with pytest.raises(S.StudyError, match="--extend"):
        _study(tmp_path, folds=(1, 2))
    S.update(tmp_path / "ablation", "fold1/two_stage", state="done")
    grown = _study(tmp_path, folds=(1, 2), extend=True)
    assert len(grown["runs"]) == 10 and grown["runs"]["fold1/two_stage"]["state"] == "done"
    assert json.loads((tmp_path / "ablation" / "study.json").read_text())["runs"].keys() == grown["runs"].keys()


def test_time_adds_up_over_attempts(tmp_path, monkeypatch):
    _study(tmp_path)
    clock = iter([100.0, 130.0, 200.0, 210.0])
    monkeypatch.setattr(S.time, "time", lambda: next(clock))
    S.update(tmp_path / "ablation", "fold1/one_stage", state="running")
    S.update(tmp_path / "ablation", "fold1/one_stage", state="interrupted")
    S.update(tmp_path / "ablation", "fold1/one_stage", state="running")
    rec = S.update(tmp_path / "ablation", "fold1/one_stage", state="failed", error="boom")
    assert rec["elapsed"] == pytest.approx(40.0) and rec["error"] == "boom"


def test_status_fits_80_columns_with_nothing_cut(tmp_path):
    _study(tmp_path, folds=(1, 2), classes=(11, 10))
    S.update(tmp_path / "ablation", "fold2/two_stage_carry_none-10cl", state="failed",
             error="train exit 2: error: a long message " + "that goes on " * 12)
    S.update(tmp_path / "ablation", "fold1/two_stage", slurm_submission="s1", slurm_job="12345678_19")
    out = io.StringIO()
    counts = print_status(tmp_path / "ablation", Console(file=out, width=80, force_terminal=False))
    text = out.getvalue()
    assert counts == {"pending": 19, "failed": 1}
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "two_stage_carry_none-10cl" in text.replace("\n", "").replace(" ", "") or "carry_none" in text
    for header in ("run", "fold", "state", "ep", "val", "UAR", "WAR", "time"):
        assert header in text
    assert "that goes on" in text
    assert "with Slurm (1): fold1/two_stage job 12345678_19" in text  # who holds a submitted run


def test_a_second_launcher_on_one_study_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    with S.launcher_lock(tmp_path / "s"):
        with pytest.raises(S.StudyError, match=r"another `umbenet study run` is working on .* \(pid \d+ on "):
            with S.launcher_lock(tmp_path / "s"):
                pass
    with S.launcher_lock(tmp_path / "s"):  # released: the next one goes ahead
        pass
