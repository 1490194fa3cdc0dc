"""A test session leaves nothing behind in the temporary directory (it left ~10 MB a run)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_test_session_removes_its_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "UMBENET_HOME"}
    env["TMPDIR"] = str(tmp_path)
    (tmp_path / "test_uses_home.py").write_text(
        "import os\n"
        "from umbenet_cli.model.tiny_backbone import ensure_tiny_backbone\n"
        "def test_home():\n"
        "    assert os.environ['UMBENET_HOME'].startswith(os.environ['TMPDIR'])\n"
        "    assert ensure_tiny_backbone().is_dir()\n")
    # tests/conftest.py loaded as a plugin: the same session set-up as `pytest tests/`.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                           str(tmp_path / "test_uses_home.py")],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert list(tmp_path.glob("umbenet-test-home-*")) == []
