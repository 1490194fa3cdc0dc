"""umbenet export: a run's model as a folder anyone can use (weights, config, classes, model card),
loaded by UMBEnet.load and `umbenet predict --run`, also by a Hugging Face Hub repo id."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from umbenet_cli.cli import main
from umbenet_cli.inference.model_card import front_matter, parse_card_table, percent

SAMPLE_CLIPS = Path(__file__).resolve().parents[2] / "sample_data" / "mafw" / "clips"


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def evaluated_run(train_tiny_run, tmp_path_factory):
    """A tiny one-stage run (2 steps) on the sample cache, evaluated on its test split."""
    run = train_tiny_run(tmp_path_factory.mktemp("runs"))
    assert main(["eval", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def exported(evaluated_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model"
    assert main(["export", str(evaluated_run), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    for name in ("00001.mp4", "00007.mp4"):  # with audio; without an audio track
        shutil.copy(SAMPLE_CLIPS / name, folder / name)
    return folder


def predict_probs(run: str, clips: Path, out: Path) -> list[dict]:
    assert main(["predict", str(clips), "--run", run, "--no-asr", "--json", str(out)]) == 0
    return [v["probabilities"] for v in json.loads(out.read_text())["videos"]]


def test_exported_folder_holds_everything_and_no_pickle(exported, evaluated_run):
    names = {p.name for p in exported.iterdir()}
    assert {"model.safetensors", "config.json", "meta.json", "classes.json", "run.json", "eval-test.json",
            "README.md", "COMPLETE"} <= names
    assert not [n for n in names if n.endswith((".pt", ".pth", ".pkl", ".bin"))]
    meta = json.loads((exported / "meta.json").read_text())
    assert meta["backbone"]["name"] == "umbenet/tiny-random-clip" and len(meta["backbone"]["fingerprint"]) > 8
    assert meta["exported_from"] == {"run": "r", "split": "fold1", "fold": 1, "stage": "onestage",
                                     "checkpoint": "best", "global_step": 2}
    assert json.loads((exported / "classes.json").read_text())[0] == "anger"
    card = (exported / "README.md").read_text()
    assert "umbenet train --cache" in card and "umbenet eval" in card  # the recorded command lines
    assert "hf upload" in card and "random weights" in card


def test_predict_from_export_equals_predict_from_run(exported, evaluated_run, clips, tmp_path):
    from_run = predict_probs(str(evaluated_run), clips, tmp_path / "a.json")
    from_export = predict_probs(str(exported), clips, tmp_path / "b.json")
    assert from_run == from_export and all(p is not None for p in from_run)


def test_umbenet_load_of_export_equals_checkpoint(exported, evaluated_run):
    from umbenet_cli.model import UMBEnet

    a = UMBEnet.load(evaluated_run / "fold1" / "onestage" / "checkpoints" / "best").trainable_state_dict()
    b = UMBEnet.load(exported).trainable_state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_card_table_equals_eval_test_json(exported, evaluated_run):
    card = (exported / "README.md").read_text()
    summary = json.loads((evaluated_run / "eval-test.json").read_text())
    rows = parse_card_table(card)
    assert [r["subset"] for r in rows] == [s["name"] for s in summary["subsets"]]
    for row, s in zip(rows, summary["subsets"]):
        assert row["UAR %"] == f"{100 * s['uar']['mean']:.2f}" and row["WAR %"] == f"{100 * s['war']['mean']:.2f}"
        assert row["UAR % w/o neutral (authors' rule)"] == percent(s["uar_without_neutral_authors"])
        assert "±" not in row["UAR %"] and s["uar"]["std"] is None  # one fold: no std, not 0.0
        assert s["uar"]["per_fold"] == [s["uar"]["mean"]] and len(s["n"]) == 1
    fm = front_matter(card)
    assert fm["library_name"] == "umbenet" and fm["datasets"] == ["mafw"]
    assert {"uar", "war"} <= set(fm["metrics"]) and "emotion-recognition" in fm["tags"]
    metrics = fm["model-index"][0]["results"][0]["metrics"]
    by_name = {m["name"]: m["value"] for m in metrics}
    for s in summary["subsets"]:
        assert by_name[f"UAR ({s['name']})"] == round(100 * s["uar"]["mean"], 2)


def test_export_refuses_to_overwrite(evaluated_run, exported, tmp_path, capsys):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["export", str(evaluated_run), "--out", str(tmp_path / "other")]) == 2
    assert "is not an exported model" in flat(capsys.readouterr().err)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    assert main(["export", str(evaluated_run), "--out", str(copy)]) == 2
    assert "pass --force" in flat(capsys.readouterr().err)
    assert main(["export", str(evaluated_run), "--out", str(copy), "--force"]) == 0


def test_unevaluated_run_card_says_so(sample_cache, tmp_path, capsys):
    assert main(["train", "--cache", str(sample_cache), "--runs-dir", str(tmp_path), "--preset", "tiny",
                 "--name", "u", "--fold", "1", "--stage", "one", "--max-steps", "1"]) == 0
    assert main(["export", str(tmp_path / "u"), "--out", str(tmp_path / "m")]) == 0
    assert "not evaluated" in capsys.readouterr().out
    card = (tmp_path / "m" / "README.md").read_text()
    assert "Not evaluated" in card and "model-index" not in front_matter(card)


def test_hub_id_offline_is_a_clear_error(clips, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    assert main(["predict", str(clips / "00001.mp4"), "--run", "someone/umbenet-mafw", "--no-asr"]) == 2
    err = flat(capsys.readouterr().err)
    assert "'someone/umbenet-mafw'" in err and "HF_HUB_OFFLINE" in err and "hf download someone/umbenet-mafw" in err
    assert "Traceback" not in err
    from umbenet_cli.model import UMBEnet
    from umbenet_cli.model.hub import HubError

    with pytest.raises(HubError, match="someone/umbenet-mafw"):
        UMBEnet.load("someone/umbenet-mafw")


def test_hub_id_uses_the_fetched_snapshot(exported, clips, tmp_path, monkeypatch):
    """A repo id that is no local path goes through snapshot_download (faked: no network in tests)."""
    asked = []

    def fake_snapshot(repo_id, revision=None, allow_patterns=None, local_files_only=False):  # a cached snapshot
        asked.append((repo_id, revision))
        return str(exported)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot)
    monkeypatch.chdir(tmp_path)
    via_hub = predict_probs("someone/umbenet-mafw@v1", clips, tmp_path / "h.json")
    assert asked == [("someone/umbenet-mafw", "v1")]
    assert via_hub == predict_probs(str(exported), clips, tmp_path / "e.json")
