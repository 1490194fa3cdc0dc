"""Bad ASR input to `umbenet prep` / `umbenet predict`: each a message naming the option and the
fix, exit code 2, and nothing written."""
from __future__ import annotations

import shutil

import pytest
import torch

from tests.pipelines.asr_fixtures import ct2_tiny_en
from tests.pipelines.prep_fixtures import SAMPLE, write_manifest
from umbenet_cli.cli import main


@pytest.fixture
def manifest(tmp_path):
    shutil.copy(SAMPLE / "clips" / "00018.mp4", tmp_path / "a.mp4")
    return write_manifest(tmp_path, [{"path": "a.mp4", "label": "anger", "text": "", "fold": 1}])


def flat(text: str) -> str:
    return " ".join(text.split())


def prep_fails(manifest, out, capsys, *asr_options) -> str:
    assert main(["prep", "manifest", str(manifest), "--out", str(out), "--preset", "tiny", "--text", "asr",
                 *asr_options]) == 2
    assert not out.exists()  # nothing written
    return flat(capsys.readouterr().err)


def corrupt_ct2(folder):
    folder.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(ct2_tiny_en() / name, folder / name)
    (folder / "model.bin").write_bytes(b"\x07\x00\x00\x00 not a CTranslate2 model")
    return folder


def test_corrupt_ct2_folder(manifest, tmp_path, capsys):
    bad = corrupt_ct2(tmp_path / "ct2")
    err = prep_fails(manifest, tmp_path / "cache", capsys, "--asr-backend", "faster-whisper", "--asr-model", str(bad))
    assert f"--asr-model {bad}" in err and "does not load" in err and "Fix:" in err


def test_ct2_folder_missing_files(manifest, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = prep_fails(manifest, tmp_path / "cache", capsys, "--asr-backend", "faster-whisper",
                     "--asr-model", str(tmp_path / "empty"))
    assert "not a CTranslate2 Whisper folder" in err and "model.bin" in err and "Fix:" in err


def test_pt_that_is_not_a_whisper_checkpoint(manifest, tmp_path, capsys):
    pt = tmp_path / "resnet.pt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, pt)
    err = prep_fails(manifest, tmp_path / "cache", capsys, "--asr-model", str(pt))
    assert f"--asr-model {pt}: not an openai-whisper checkpoint" in err and "Fix:" in err


def test_model_of_the_other_backend(manifest, tmp_path, capsys):
    err = prep_fails(manifest, tmp_path / "cache", capsys, "--asr-backend", "whisper", "--asr-model", str(ct2_tiny_en()))
    assert "pass --asr-backend faster-whisper" in err
    pt = tmp_path / "x.pt"
    pt.write_bytes(b"x")
    err = prep_fails(manifest, tmp_path / "cache", capsys, "--asr-backend", "faster-whisper", "--asr-model", str(pt))
    assert "pass --asr-backend whisper" in err


@pytest.mark.parametrize("backend, fix", [("faster-whisper", "download_model('tiny')"),
                                          ("whisper", "whisper.load_model('tiny')")])
def test_offline_model_name(backend, fix, manifest, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))  # no cached copy
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))  # openai-whisper's ~/.cache/whisper
    err = prep_fails(manifest, tmp_path / "cache", capsys, "--asr-backend", backend, "--asr-model", "tiny")
    assert f"could not load Whisper model 'tiny' (--asr-backend {backend})" in err
    assert fix in err and "--asr-model" in err


def test_english_only_model_with_another_language(manifest, tmp_path, capsys):
    err = prep_fails(manifest, tmp_path / "cache", capsys, "--asr-backend", "faster-whisper",
                     "--asr-model", str(ct2_tiny_en()), "--language", "de")
    assert "--language 'de'" in err and "English-only" in err


@pytest.mark.parametrize("option, expect", [(["--asr-backend", "vosk"], "--asr-backend 'vosk': choose one of"),
                                            (["--language", "xx"], "--language 'xx': not a language Whisper knows")])
def test_unknown_backend_or_language(option, expect, manifest, tmp_path, capsys):
    assert expect in prep_fails(manifest, tmp_path / "cache", capsys, *option)
    json_path = tmp_path / "p.json"
    assert main(["predict", str(tmp_path / "a.mp4"), "--run", str(tmp_path / "no-run"), *option,
                 "--json", str(json_path)]) == 2
    assert expect in flat(capsys.readouterr().err) and not json_path.exists()


def test_backend_left_out_follows_the_model(tmp_path):
    from pipelines.asr import DEFAULT_BACKEND, backend_for

    pt = tmp_path / "model.pt"
    pt.write_bytes(b"x")
    assert backend_for(str(pt)) == "whisper"
    assert backend_for(str(ct2_tiny_en())) == "faster-whisper" == DEFAULT_BACKEND
    assert backend_for("base") == DEFAULT_BACKEND
    assert backend_for(str(pt), "faster-whisper") == "faster-whisper"  # an explicit choice wins
