"""umbenet predict: real sample clips through a tiny trained run and a tiny random Whisper, with
every modality subset (no audio track, no face, no speech), folders, and every bad input."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from umbenet_cli.cli import main
from umbenet_cli.model.config import MODALITIES

SAMPLE_CLIPS = Path(__file__).resolve().parents[2] / "sample_data" / "mafw" / "clips"


def flat(text: str) -> str:
    """Rich wraps messages at 80 columns; compare on single spaces."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def run_dir(train_tiny_run, tmp_path_factory):
    """A tiny one-stage run (2 steps) on the prepared sample cache: runs/r/fold1/onestage/..."""
    return train_tiny_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def whisper_pt(tmp_path_factory):
    from pipelines.asr import write_tiny_whisper

    return write_tiny_whisper(tmp_path_factory.mktemp("whisper") / "whisper-tiny-random.pt")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A folder: a clip with audio (00001), one without an audio stream (00007), a synthetic
    test pattern with a sine tone (no face), and a file that is not a video at all."""
    folder = tmp_path_factory.mktemp("videos")
    shutil.copy(SAMPLE_CLIPS / "00001.mp4", folder / "00001.mp4")
    shutil.copy(SAMPLE_CLIPS / "00007.mp4", folder / "00007.mp4")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-shortest", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", str(folder / "no_face.mp4")], check=True)
    (folder / "zz_broken.mp4").write_bytes(b"this is not a video")
    (folder / "notes.txt").write_text("not a video suffix: ignored")
    return folder


def predict(run_dir, whisper_pt, target, out_json, *extra) -> tuple[int, dict | None]:
    rc = main(["predict", str(target), "--run", str(run_dir), "--asr-model", str(whisper_pt),
               "--json", str(out_json), *extra])
    return rc, (json.loads(Path(out_json).read_text()) if Path(out_json).exists() else None)


def check_consistent(v: dict, classes: list[str], pool_size: int = 6, top_k: int = 2) -> None:
    """What must hold for any predicted video, whatever the random weights say."""
    assert v["status"] == "ok" and v["error"] is None
    assert list(v["probabilities"]) == classes
    p = np.array(list(v["probabilities"].values()))
    assert np.all(p >= 0) and abs(p.sum() - 1.0) < 1e-5
    assert v["predicted"] == classes[int(p.argmax())]
    assert any(v["present"].values())  # the model never sees a clip without a modality
    for m in MODALITIES:
        assert v["present"][m] == (m not in v["missing_reasons"])
    assert v["present"]["text"] == (v["transcript"] is not None)
    if v["present"]["text"]:
        assert v["present"]["audio"]  # the transcript comes from the audio
    assert len(v["selected_prompts"]) == top_k and all(0 <= i < pool_size for i in v["selected_prompts"])


@pytest.fixture(scope="module")
def classes(run_dir):
    return json.loads((run_dir / "classes.json").read_text())


# ------------------------------------------------------------------------------ modalities
def test_clip_with_audio(run_dir, whisper_pt, videos, classes, tmp_path, capsys):
    rc, data = predict(run_dir, whisper_pt, videos / "00001.mp4", tmp_path / "p.json")
    assert rc == 0
    [v] = data["videos"]
    check_consistent(v, classes)
    assert v["present"]["video"] and v["present"]["audio"]
    # The random Whisper may or may not produce words: text is present iff there is a transcript.
    if not v["present"]["text"]:
        assert v["missing_reasons"]["text"].startswith("asr:")
    assert data["checkpoint"].endswith("fold1/onestage/checkpoints/best") and data["classes"] == classes
    out = capsys.readouterr().out
    assert "00001.mp4" in out and v["predicted"] in out
    # The pool line says what its numbers are: the indices of the prompts the video selected.
    chosen = ", ".join(f"#{i}" for i in v["selected_prompts"])
    assert f"pool prompts {chosen} (selected by this video, of the pool's 6)" in flat(out)  # tiny: N=6
    top = v["probabilities"][v["predicted"]]  # one unit: the title and the column both in percent
    assert f"({100 * top:.1f}%)" in out and "probability %" in out
    assert all(f"{100 * p:.1f}" in out for p in v["probabilities"].values())


def test_clip_without_audio_track(run_dir, whisper_pt, videos, classes, tmp_path):
    rc, data = predict(run_dir, whisper_pt, videos / "00007.mp4", tmp_path / "p.json")
    assert rc == 0
    [v] = data["videos"]
    check_consistent(v, classes)
    assert v["present"] == {"video": True, "audio": False, "text": False}
    assert v["missing_reasons"]["audio"] == "no audio stream"
    assert "no audio to transcribe" in v["missing_reasons"]["text"] and v["transcript"] is None


def test_video_without_a_face(run_dir, whisper_pt, videos, classes, tmp_path):
    rc, data = predict(run_dir, whisper_pt, videos / "no_face.mp4", tmp_path / "p.json")
    assert rc == 0
    [v] = data["videos"]
    check_consistent(v, classes)
    assert not v["present"]["video"] and "no face" in v["missing_reasons"]["video"]
    assert v["present"]["audio"] and v["face_ratio"] == 0.0


def test_no_asr_leaves_text_missing(run_dir, whisper_pt, videos, classes, tmp_path):
    rc, data = predict(run_dir, whisper_pt, videos / "00001.mp4", tmp_path / "p.json", "--no-asr")
    assert rc == 0
    [v] = data["videos"]
    check_consistent(v, classes)
    assert v["present"] == {"video": True, "audio": True, "text": False}
    assert "--no-asr" in v["missing_reasons"]["text"] and data["asr_model"] is None


# -------------------------------------------------------------------------------- folders
@pytest.fixture(scope="module")
def folder_result(run_dir, whisper_pt, videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("folder") / "all.json"
    rc, data = predict(run_dir, whisper_pt, videos, out, "--batch-clips", "3", "--top", "2")
    return rc, data


def test_folder_one_entry_per_video(folder_result, videos, classes):
    rc, data = folder_result
    assert rc == 1  # one broken file: the others are predicted and written, the exit code says so
    names = [Path(v["path"]).name for v in data["videos"]]
    assert names == ["00001.mp4", "00007.mp4", "no_face.mp4", "zz_broken.mp4"]  # sorted, .txt ignored
    for v in data["videos"][:3]:
        check_consistent(v, classes)
    broken = data["videos"][3]
    assert broken["status"] == "error" and broken["probabilities"] is None and broken["predicted"] is None
    assert broken["error"] and not any(broken["present"].values())


def test_same_clip_alone_or_in_a_folder(folder_result, run_dir, whisper_pt, videos, tmp_path):
    _, folder = folder_result
    for i, name in enumerate(["00001.mp4", "00007.mp4", "no_face.mp4"]):
        rc, alone = predict(run_dir, whisper_pt, videos / name, tmp_path / f"{name}.json")
        assert rc == 0
        a, f = alone["videos"][0], folder["videos"][i]
        assert a["present"] == f["present"] and a["transcript"] == f["transcript"]
        assert a["selected_prompts"] == f["selected_prompts"]
        np.testing.assert_allclose(list(a["probabilities"].values()), list(f["probabilities"].values()),
                                   atol=1e-5, rtol=0)


def test_folder_table(run_dir, whisper_pt, videos, tmp_path, capsys):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("00007.mp4", "no_face.mp4"):
        shutil.copy(videos / name, folder / name)
    assert main(["predict", str(folder), "--run", str(run_dir), "--no-asr"]) == 0
    out = flat(capsys.readouterr().out)
    assert "2 videos" in out and "00007.mp4" in out and "no_face.mp4" in out
    assert "no audio stream" in out


def test_folder_with_a_failed_video_says_so_and_exits_1(run_dir, videos, tmp_path, capsys):
    folder = tmp_path / "some-fail"
    folder.mkdir()
    for name in ("00007.mp4", "zz_broken.mp4"):
        shutil.copy(videos / name, folder / name)
    assert main(["predict", str(folder), "--run", str(run_dir), "--no-asr"]) == 1
    captured = capsys.readouterr()
    assert "00007.mp4" in flat(captured.out)  # the video that went through is shown
    err = flat(captured.err)
    assert "1 of 2 videos could not be predicted (zz_broken.mp4" in err and "exit code 1" in err
    assert (captured.out + captured.err).count("could not be predicted") == 1  # the summary once


# --------------------------------------------------------------------- the model's contract
def test_model_never_sees_a_clip_without_modality(run_dir):
    """A clip with nothing usable gets an error entry; the forward pass only gets the others."""
    import torch

    from umbenet_cli.inference.inputs import ClipInputs, MediaReader
    from umbenet_cli.inference.predict import Predictor
    from umbenet_cli.model import UMBEnet

    model = UMBEnet.load(run_dir / "fold1" / "onestage" / "checkpoints" / "best")
    seen = []
    model.register_forward_pre_hook(lambda mod, args: seen.append(args[0].present.clone()))
    reader = MediaReader(4, 16000, model.audio.num_samples)
    nothing = ClipInputs(Path("silent.mp4"), missing={"video": "no face", "audio": "no audio stream",
                                                      "text": "no audio to transcribe"})
    audio_only = ClipInputs(Path("a.mp4"), audio=np.zeros(8000, np.float32),
                            missing={"video": "no face", "text": "asr: empty transcript"})
    preds = Predictor(model, reader).predict_inputs([nothing, audio_only])
    assert not preds[0].ok and "no usable modality" in preds[0].error and preds[0].probabilities is None
    assert preds[1].ok and preds[1].present == {"video": False, "audio": True, "text": False}
    assert len(seen) == 1 and torch.equal(seen[0], torch.tensor([[False, True, False]]))


def test_modalities_the_run_did_not_train_on_are_withheld(run_dir):
    from umbenet_cli.inference.inputs import ClipInputs, MediaReader
    from umbenet_cli.inference.predict import Predictor
    from umbenet_cli.model import UMBEnet

    model = UMBEnet.load(run_dir / "fold1" / "onestage" / "checkpoints" / "best")
    clip = ClipInputs(Path("a.mp4"), audio=np.zeros(8000, np.float32), text="hello",
                      missing={"video": "no face"})
    [p] = Predictor(model, MediaReader(4, 16000, model.audio.num_samples), modalities=("video", "text")).predict_inputs([clip])
    assert p.present == {"video": False, "audio": False, "text": True}
    assert "trained on video,text only" in p.missing["audio"]


# ------------------------------------------------------------------------------ bad input
def test_missing_path(run_dir, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.mp4"), "--run", str(run_dir), "--no-asr"]) == 2
    err = flat(capsys.readouterr().err)
    assert "no such file or folder" in err and "Traceback" not in err


def test_empty_folder(run_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    assert main(["predict", str(tmp_path / "empty"), "--run", str(run_dir), "--no-asr"]) == 2
    assert "no video files in" in flat(capsys.readouterr().err)


def test_run_without_checkpoint(videos, tmp_path, capsys):
    run = tmp_path / "runs" / "unfinished"
    (run / "fold1" / "stage1" / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    assert main(["predict", str(videos / "00007.mp4"), "--run", str(run), "--no-asr"]) == 2
    err = flat(capsys.readouterr().err)
    assert "has no complete 'best' checkpoint" in err and "Fix:" in err
    shutil.rmtree(run / "fold1")
    assert main(["predict", str(videos / "00007.mp4"), "--run", str(run), "--no-asr"]) == 2
    assert "has no checkpoint yet" in flat(capsys.readouterr().err)


def test_nothing_predictable_exits_2_with_reasons(run_dir, videos, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["predict", str(videos / "zz_broken.mp4"), "--run", str(run_dir), "--no-asr",
                 "--json", str(out)]) == 2
    captured = capsys.readouterr()
    err = flat(captured.err)
    assert "no video could be predicted" in err and "zz_broken.mp4" in err
    reason = json.loads(out.read_text())["videos"][0]["error"]
    assert json.loads(out.read_text())["videos"][0]["status"] == "error"  # still reported
    assert flat(captured.out + captured.err).count(flat(reason)) == 1  # the reason once, not per modality


def test_offline_whisper_name(run_dir, videos, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))  # no whisper weights here
    assert main(["predict", str(videos / "00001.mp4"), "--run", str(run_dir), "--asr-model", "tiny"]) == 2
    err = flat(capsys.readouterr().err)
    assert "could not load Whisper model 'tiny'" in err and "--no-asr" in err
    assert "or use annotated text only" not in err  # --text is a prep option, not predict's


@pytest.mark.parametrize("extra,message", [
    (["--checkpoint", "worst"], "--checkpoint 'worst': choose one of ['best', 'last']"),
    (["--top", "0"], "--top 0"),
    (["--language", "klingon"], "--language 'klingon'"),
    (["--device", "tpu"], "--device 'tpu'"),
    (["--fold", "3"], "--fold 3: the run"),
])
def test_bad_options(run_dir, videos, capsys, extra, message):
    assert main(["predict", str(videos / "00007.mp4"), "--run", str(run_dir), "--no-asr", *extra]) == 2
    assert message in flat(capsys.readouterr().err)


# --------------------------------------------------------------------- finding the checkpoint
def _fake_checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "COMPLETE").write_text("ok\n")
    return folder


def test_find_checkpoint_levels_and_stage_order(tmp_path):
    from umbenet_cli.inference.locate import PredictError, find_checkpoint

    run = tmp_path / "runs" / "a"
    (run).mkdir(parents=True)
    (run / "run.json").write_text("{}")
    s1 = _fake_checkpoint(run / "fold2" / "stage1" / "checkpoints" / "best")
    assert find_checkpoint(run) == s1
    s2 = _fake_checkpoint(run / "fold2" / "stage2" / "checkpoints" / "best")
    last = _fake_checkpoint(run / "fold2" / "stage2" / "checkpoints" / "last")
    assert find_checkpoint(run) == s2  # the final stage wins
    assert find_checkpoint(run, "last") == last
    assert find_checkpoint(run / "fold2" / "stage1") == s1  # a stage folder
    assert find_checkpoint(last) == last  # a checkpoint folder
    assert find_checkpoint(None, runs_dir=tmp_path / "runs") == s2  # the only run
    with pytest.raises(PredictError, match="use --checkpoint best"):
        find_checkpoint(run / "fold2" / "stage1", "last")
    _fake_checkpoint(run / "fold3" / "onestage" / "checkpoints" / "best")
    with pytest.raises(PredictError, match=r"several folds \(2, 3\): pick the model with --fold N"):
        find_checkpoint(run)
    assert find_checkpoint(run, fold=3) == run / "fold3" / "onestage" / "checkpoints" / "best"
    with pytest.raises(PredictError, match="--fold only picks a fold of a run folder"):
        find_checkpoint(s1, fold=2)
    (tmp_path / "runs" / "b").mkdir()
    (tmp_path / "runs" / "b" / "run.json").write_text("{}")
    with pytest.raises(PredictError, match="2 runs under .*: a, b"):
        find_checkpoint(None, runs_dir=tmp_path / "runs")
    with pytest.raises(PredictError, match="no training run under"):
        find_checkpoint(None, runs_dir=tmp_path / "nothing")
    with pytest.raises(PredictError, match="not a run, stage or checkpoint folder"):
        find_checkpoint(tmp_path)


def test_scene_stream_model_gets_whole_frames(videos):
    """A model with the scene stream (untrained here) gets scene embeddings of the whole frames."""
    from umbenet_cli.inference.inputs import MediaReader
    from umbenet_cli.inference.predict import Predictor
    from umbenet_cli.model import UMBEnet, UMBEnetConfig

    model = UMBEnet(UMBEnetConfig.preset("tiny", **{"temporal.scene_stream": "true"}))
    reader = MediaReader(4, 16000, model.audio.num_samples, scene=True)
    [clip] = reader.read([videos / "00007.mp4"])
    assert clip.scene.shape == (4, 112, 112, 3) and clip.crops.shape == (4, 224, 224, 3)
    predictor = Predictor(model, reader)
    batch = predictor.batch([clip])
    assert batch.scene_emb.shape == (1, 4, model.backbone.dims.embed_dim) and batch.scene_emb.abs().sum() > 0
    [p] = predictor.predict_inputs([clip])
    assert p.ok and abs(sum(p.probabilities.values()) - 1) < 1e-5


@pytest.mark.gpu
def test_predict_on_cuda_matches_cpu(run_dir, whisper_pt, videos, tmp_path):
    rc_cpu, cpu = predict(run_dir, whisper_pt, videos / "00001.mp4", tmp_path / "cpu.json")
    rc_gpu, gpu = predict(run_dir, whisper_pt, videos / "00001.mp4", tmp_path / "gpu.json", "--device", "cuda")
    assert rc_cpu == rc_gpu == 0
    a, b = cpu["videos"][0], gpu["videos"][0]
    assert a["present"]["video"] == b["present"]["video"] and a["present"]["audio"] == b["present"]["audio"]
    if a["transcript"] == b["transcript"]:  # Whisper runs in fp16 on a GPU: words may differ
        np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-3)
