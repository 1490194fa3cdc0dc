"""--logger tensorboard|wandb|none: the event files say what metrics.jsonl says, resumed curves have
no repeated steps, eval adds its scores and confusion figures, W&B stays offline unless configured."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from umbenet_cli.cli import main
from umbenet_cli.training.tracking import epoch_scalars


def train(cache, runs, *extra):
    return main(["train", "--cache", str(cache), "--runs-dir", str(runs), "--preset", "tiny", *extra])


def events(stage: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(stage / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    return acc


def lines(stage: Path) -> list[dict]:
    return [json.loads(x) for x in (stage / "metrics.jsonl").read_text().splitlines()]


def test_every_scalar_matches_metrics_jsonl(synthetic_cache, tmp_path):
    assert train(synthetic_cache, tmp_path, "--name", "r", "--fold", "1", "--stage", "one",
                 "--set", "optim.max_epochs=2") == 0
    stage = tmp_path / "r" / "fold1" / "onestage"
    acc, ms = events(stage), lines(stage)
    tags = set(acc.Tags()["scalars"])
    for line in ms:
        for tag, value in epoch_scalars(line).items():
            got = {e.step: e.value for e in acc.Scalars(tag)}
            assert got[line["global_step"]] == pytest.approx(value, rel=1e-6, abs=1e-7), tag
            tags.discard(tag)
    assert {"prompts/selections_V", "epoch/val_uar", "epoch/clips_per_s"} <= {t for line in ms for t in epoch_scalars(line)}
    steps = [e.step for e in acc.Scalars("train_step/loss_total")]
    assert steps == list(range(1, ms[-1]["global_step"] + 1))
    assert {f"train_step/loss_{k}" for k in ("total", "ce", "l1", "gate_l1", "key")} | {"train_step/lr"} <= tags
    result = json.loads((stage / "result.json").read_text())
    assert acc.Scalars("summary/best_val_uar")[0].value == pytest.approx(result["best_val_uar"])
    assert "prompts/selected" in acc.Tags()["histograms"]
    # eval adds each subset's UAR/WAR and the confusion figures to the same log
    assert main(["eval", str(tmp_path / "r")]) == 0
    res = json.loads((stage / "eval" / "test" / "results.json").read_text())
    acc = events(stage)
    for e in res["subsets"]:
        got = acc.Scalars(f"eval_test/uar_{e['name']}")
        assert [g.step for g in got] == [result["global_step"]] and got[0].value == pytest.approx(e["uar"])
        assert f"eval_test/confusion_{e['name']}" in acc.Tags()["images"]


def test_resumed_run_has_no_repeated_steps(synthetic_cache, tmp_path, monkeypatch):
    """Killed in epoch 2 after its steps were logged, resumed from the epoch-1 checkpoint: the
    steps logged after that checkpoint are purged, and the curve equals an uninterrupted run's."""
    args = ["--fold", "1", "--stage", "one", "--set", "optim.max_epochs=2"]
    assert train(synthetic_cache, tmp_path, "--name", "straight", *args) == 0
    from umbenet_cli.training import loop

    real, calls = loop.StageTrainer._step, {"n": 0}

    def dies(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 20:  # epoch 2 (14 steps per epoch); checkpoints/last is epoch 1's end
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(loop.StageTrainer, "_step", dies)
    assert train(synthetic_cache, tmp_path, "--name", "resumed", *args) == 130  # Ctrl-C
    cut = events(tmp_path / "resumed" / "fold1" / "onestage")
    assert max(e.step for e in cut.Scalars("train_step/loss_total")) == 19  # logged past the checkpoint
    monkeypatch.setattr(loop.StageTrainer, "_step", real)
    assert train(synthetic_cache, tmp_path, "--name", "resumed", "--resume") == 0
    a = events(tmp_path / "straight" / "fold1" / "onestage")
    b = events(tmp_path / "resumed" / "fold1" / "onestage")
    for tag in ("train_step/loss_total", "train_step/lr", "epoch/val_uar", "epoch/train_loss"):
        sa, sb = a.Scalars(tag), b.Scalars(tag)
        assert [e.step for e in sb] == sorted(set(e.step for e in sb)) == [e.step for e in sa], tag
        assert [e.value for e in sb] == pytest.approx([e.value for e in sa], rel=1e-5), tag


def test_logger_none_and_bad_logger(synthetic_cache, tmp_path, capsys):
    assert train(synthetic_cache, tmp_path, "--name", "n", "--fold", "1", "--stage", "one", "--max-steps", "2",
                 "--logger", "none") == 0
    assert not (tmp_path / "n" / "fold1" / "onestage" / "tensorboard").exists()
    assert (tmp_path / "n" / "fold1" / "onestage" / "metrics.jsonl").is_file()
    assert train(synthetic_cache, tmp_path, "--name", "m", "--fold", "1", "--logger", "mlflow") == 2
    assert "--logger 'mlflow': choose one of" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_wandb_absent_is_a_clear_error(synthetic_cache, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    assert train(synthetic_cache, tmp_path, "--name", "w", "--fold", "1", "--logger", "wandb") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "the wandb package is not installed" in err and "--logger tensorboard" in err
    assert not (tmp_path / "w").exists()


def train_with_wandb_offline(cache, runs, monkeypatch) -> Path:
    """A one-stage run of 3 steps logged with --logger wandb, offline; returns its stage folder."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert train(cache, runs, "--name", "w", "--fold", "1", "--stage", "one", "--max-steps", "3",
                 "--logger", "wandb") == 0
    return runs / "w" / "fold1" / "onestage"


def test_wandb_offline_writes_local_files(synthetic_cache, tmp_path, monkeypatch, caplog):
    stage = train_with_wandb_offline(synthetic_cache, tmp_path, monkeypatch)
    runs = list((stage / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    info = json.loads((stage / "tracking.json").read_text())
    assert info["logger"] == "wandb" and info["wandb_id"] in runs[0].name
    # Offline, eval starts no second run folder (synced, it would replace the training curves:
    # W&B cannot append to an offline run); it says so and how to add the scores later.
    assert main(["eval", str(tmp_path / "w")]) == 0
    assert list((stage / "wandb").glob("*run-*")) == runs
    err = " ".join(caplog.text.split())  # a warning: the terminal shows it
    assert f"eval scores not added to W&B run {info['wandb_id']}" in err and "cannot append to an offline run" in err
    assert "wandb sync" in err and "W&B online" in err
    assert (stage / "eval" / "test" / "results.json").is_file()


class FakeWandbRun:
    def __init__(self, **kwargs) -> None:
        self.init, self.logged, self.summary, self.finished = kwargs, [], {}, False

    def log(self, values: dict, step: int) -> None:
        self.logged.append((step, values))

    def finish(self) -> None:
        self.finished = True


@pytest.fixture
def wandb_trained_run(synthetic_cache, tmp_path, monkeypatch):
    """A stage trained with --logger wandb (offline), then W&B configured online (wandb.init faked:
    no server in tests); the runs wandb.init opened from then on."""
    stage = train_with_wandb_offline(synthetic_cache, tmp_path, monkeypatch)
    import wandb

    opened: list[FakeWandbRun] = []

    def fake_init(**kwargs):
        opened.append(FakeWandbRun(**kwargs))
        return opened[-1]

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setattr(wandb, "init", fake_init)
    return stage, opened


def test_wandb_online_eval_writes_into_the_training_run(wandb_trained_run):
    stage, opened = wandb_trained_run
    folders = sorted((stage / "wandb").iterdir())
    assert main(["eval", str(stage.parents[1])]) == 0
    run_id = json.loads((stage / "tracking.json").read_text())["wandb_id"]
    assert len(opened) == 1 and opened[0].init["id"] == run_id and opened[0].init["resume"] == "must"
    assert opened[0].init["mode"] == "online" and opened[0].finished
    res = json.loads((stage / "eval" / "test" / "results.json").read_text())
    logged = {k: v for _, values in opened[0].logged for k, v in values.items()}
    for e in res["subsets"]:
        assert logged[f"eval_test/uar_{e['name']}"] == pytest.approx(e["uar"])
    assert sorted((stage / "wandb").iterdir()) == folders  # the fake wrote nothing, eval nothing else


def test_wandb_online_eval_of_a_run_the_server_lacks(wandb_trained_run, monkeypatch, caplog):
    """Trained offline and never synced: resume="must" fails; eval still succeeds and says why."""
    import wandb

    stage, _ = wandb_trained_run

    def no_such_run(**kwargs):
        raise wandb.errors.UsageError(f"You provided an invalid value for the `resume` argument: run {kwargs['id']} not found")

    monkeypatch.setattr(wandb, "init", no_such_run)
    assert main(["eval", str(stage.parents[1])]) == 0
    err = " ".join(caplog.text.split())
    assert "eval scores not added to W&B run" in err and "not found" in err and "wandb sync" in err


def test_only_rank_0_logs(tmp_path):
    from umbenet_cli.training.tracking import Tracker, open_tracker

    for kind in ("tensorboard", "wandb"):
        t = open_tracker(kind, tmp_path, main=False)
        assert type(t) is Tracker
        t.step(1, {"total": 1.0}, 0.1)
        t.close()
    assert not any(tmp_path.iterdir())  # no event file, no tracking.json, no wandb folder
