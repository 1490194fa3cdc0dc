"""Every command resolves --device through umbenet_cli.devices: one clean message, exit code 2."""
from __future__ import annotations

import pytest
import torch

from umbenet_cli.cli import main


def commands(cache, tmp_path) -> dict[str, list[str]]:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    return {
        "train": ["train", "--cache", str(cache), "--runs-dir", str(tmp_path / "runs"), "--preset", "tiny",
                  "--fold", "1", "--max-steps", "1"],
        "eval": ["eval", str(tmp_path / "runs" / "none")],
        "predict": ["predict", str(video), "--run", str(tmp_path / "runs" / "none"), "--no-asr"],
        "prep": ["prep", "manifest", str(tmp_path / "list.csv"), "--out", str(tmp_path / "cache"), "--preset", "tiny"],
        "info": ["info", "--preset", "tiny"],
    }


@pytest.fixture
def no_gpu(monkeypatch):
    """A CUDA build of torch on a machine without an NVIDIA GPU (no driver library)."""
    from umbenet_cli import devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(devices, "_load_libcuda", lambda: None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.mark.parametrize("command", ["train", "eval", "predict", "prep", "info"])
@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_no_cuda_is_one_message(synthetic_cache, tmp_path, capsys, no_gpu, command, spec):
    argv = commands(synthetic_cache, tmp_path)[command] + ["--device", spec]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--device {spec}: no CUDA device is usable" in err and "this machine has no NVIDIA GPU" in err
    assert "pip install" not in err  # another torch would not help without a GPU
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()  # nothing written


@pytest.mark.parametrize("command", ["train", "eval", "predict", "prep", "info"])
def test_index_out_of_range_is_one_message(synthetic_cache, tmp_path, capsys, monkeypatch, command):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert main(commands(synthetic_cache, tmp_path)[command] + ["--device", "cuda:2"]) == 2
    assert "--device cuda:2: GPU(s) [2] do not exist; this machine has 2 (0..1)" in capsys.readouterr().err


def test_gpu_idle_note(tmp_path, capsys, monkeypatch):
    # torch.cuda patched only as far as the note looks: a training step with it would call into CUDA.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for argv in (["info", "--preset", "tiny"], ["eval", str(tmp_path / "none")]):
        main(argv)
        assert "note: 1 CUDA GPU(s) available but this runs on the CPU; pass --device cuda" in capsys.readouterr().err


def test_train_shows_its_device(synthetic_cache, tmp_path, capsys):
    assert main(commands(synthetic_cache, tmp_path)["train"] + ["--stage", "one"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("device: cpu (") and "fp32" in err.splitlines()[0]
    assert "trained on cpu (" in err  # under the summary: where the run ran
    assert "CUDA GPU(s) available" not in err
