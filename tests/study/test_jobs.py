"""A job's exit code and log -> its state and the one line that says why it failed."""
from __future__ import annotations

import signal

from umbenet_cli.study.jobs import error_line, exit_text, outcome


def test_exit_codes():
    assert outcome(0) == "done"
    assert outcome(130) == outcome(-signal.SIGINT) == "interrupted"  # Ctrl-C, as train exits on it
    assert outcome(2) == outcome(-signal.SIGKILL) == "failed"  # the OOM killer is no interruption
    assert exit_text(2) == "exit 2" and exit_text(-signal.SIGKILL) == "killed by SIGKILL"


def test_the_error_line_keeps_its_reasons(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("$ umbenet train --name x\ndevice: cpu\nerror: cannot train:\n  - --stage 'x': choose one\n"
                   "  - --val-fraction 0.7: must be in (0, 0.5)\nafter\n")
    assert error_line(log) == ("error: cannot train: - --stage 'x': choose one - --val-fraction 0.7: must be in (0, 0.5)")
    log.write_text("$ umbenet eval x\nsome output\nlast words\n")
    assert error_line(log) == "last words"
    assert error_line(tmp_path / "missing.log") == "(no log)"
