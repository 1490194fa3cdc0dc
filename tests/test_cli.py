"""The command line: thin commands, clean errors with exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from umbenet_cli.cli import main


def test_info_describes_the_tiny_model(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps to 80 columns when not on a terminal
    assert main(["info", "--preset", "tiny", "--set", "pool.size=8"]) == 0
    out = capsys.readouterr().out
    assert "umbenet/tiny-random-clip" in out and "N=8" in out
    assert "prompt pool (keys, values)" in out and "CLIP image tower" in out
    config = json.loads(out[out.index("{"):])
    assert config["pool"]["size"] == 8


def test_bad_override_is_a_clean_error(capsys):
    assert main(["info", "--preset", "tiny", "--set", "pool.sise=8"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'pool.sise'" in err and "Traceback" not in err


def test_malformed_set_and_unknown_preset(capsys):
    assert main(["info", "--set", "pool.size"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["info", "--preset", "nope"]) == 2
    assert "available presets" in capsys.readouterr().err


def test_info_on_a_checkpoint(tmp_path, capsys):
    from umbenet_cli.model import UMBEnet, UMBEnetConfig

    UMBEnet(UMBEnetConfig.preset("tiny", **{"pool.top_k": 3})).save(tmp_path / "ckpt")
    assert main(["info", "--checkpoint", str(tmp_path / "ckpt")]) == 0
    assert "top-k=3" in capsys.readouterr().out
    assert main(["info", "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "no checkpoint folder" in capsys.readouterr().err


def test_console_script_exit_code():
    proc = subprocess.run([sys.executable, "-m", "umbenet_cli.cli", "info", "--preset", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "available presets" in proc.stderr


def _umbenet(*args: str) -> subprocess.CompletedProcess:
    """The installed `umbenet` console script, as a user runs it (not main() in-process)."""
    from pathlib import Path

    script = Path(sys.executable).with_name("umbenet")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "umbenet_cli.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, says", [
    ((), "Usage: umbenet"),                           # no command: the help, exit 2
    (("trian",), "No such command 'trian'"),
    (("train", "--fodl", "1"), "No such option: --fodl"),
    (("train", "--fold"), "'--fold' requires an argument"),
    (("eval", "--split"), "'--split' requires an argument"),
    (("info", "--set", "pool.size"), "KEY=VALUE"),     # a BadParameter raised by our own code
])
def test_mistyped_commands_are_usage_errors_not_tracebacks(args, says):
    """typer >= 0.24 raises its vendored click's exceptions (typer._click), not click's: both caught."""
    proc = _umbenet(*args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert says in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_version():
    from importlib.metadata import version

    proc = _umbenet("--version")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"umbenet {version('umbenet')}"
