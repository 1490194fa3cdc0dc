"""prep on the other adapters' layouts: MAFW with ASR text, FERV39k pre-cropped frame folders."""
from __future__ import annotations

import subprocess

import numpy as np

from tests.pipelines.prep_fixtures import SAMPLE
from umbenet_cli.cli import main
from umbenet_cli.data.cache_io import read_features, read_media


def test_mafw_with_asr_text_from_a_local_whisper(tmp_path):
    from pipelines.asr import write_tiny_whisper

    whisper_pt = write_tiny_whisper(tmp_path / "tiny-whisper.pt")
    out = tmp_path / "cache"
    assert main(["prep", "mafw", str(SAMPLE), "--out", str(out), "--preset", "tiny", "--text", "asr",
                 "--asr-model", str(whisper_pt), "--media-only"]) == 0
    meta = read_media(out, columns=[]).meta.to_pylist()
    assert len(meta) == 33
    by_id = {r["clip_id"]: r for r in meta}
    for no_audio in ("00007", "00011", "00016"):
        assert by_id[no_audio]["text"] is None and "no audio to transcribe" in by_id[no_audio]["text_missing_reason"]
    transcribed = [r for r in meta if r["text_source"] == "asr"]
    assert all(r["text"] and r["text_language"] for r in transcribed)
    assert all(r["text_source"] in ("asr", "none") for r in meta)  # never the captions


def test_ferv39k_frame_folders_skip_detection(tmp_path):
    root = tmp_path / "FERV39k"
    lines = {"train": [], "test": []}
    for i, (src, cls) in enumerate([("00018", "Angry"), ("00008", "Happy"), ("00015", "Sad"), ("00021", "Angry")]):
        rel = f"Crime/{cls}/{i:04d}"
        d = root / "2_ClipsforFaceCrop" / rel
        d.mkdir(parents=True)
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(SAMPLE / "clips" / f"{src}.mp4"), "-frames:v", "9",
                        str(d / "%d.jpg")], check=True)
        lines["test" if i == 3 else "train"].append(f"{rel} {cls}")
    setups = root / "4_setups" / "All_scenes"
    setups.mkdir(parents=True)
    for split, rows in lines.items():
        (setups / f"{split}_All.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "cache"
    assert main(["prep", "ferv39k", str(root), "--out", str(out), "--preset", "tiny"]) == 0
    ft = read_features(out)
    assert len(ft) == 4 and ft.presence[:, 0].all() and not ft.presence[:, 1:].any()
    assert sorted(set(ft.splits.tolist())) == ["test", "train"]
    meta = ft.meta.to_pylist()
    assert all(r["status"] == "ok" and r["n_source_frames"] == 9 for r in meta)
    assert all("face detection skipped" in r["status_reason"] for r in meta)
    assert np.isfinite(ft.frame_emb.astype(np.float32)).all()
