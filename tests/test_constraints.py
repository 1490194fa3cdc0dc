"""Reproducible installs: constraints.txt pins what the tests pass with, setup.sh installs with it."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    lines = [x for x in (ROOT / "constraints.txt").read_text().splitlines() if x and not x.startswith("#")]
    assert all(x.count("==") == 1 for x in lines), [x for x in lines if x.count("==") != 1]
    return {canonicalize_name(x.split("==")[0]): x.split("==")[1] for x in lines}


def test_every_dependency_is_pinned_to_what_is_installed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    pinned = pins()
    assert [r for r in wanted if canonicalize_name(Requirement(r).name) not in pinned] == []
    assert "typer" in pinned  # unpinned, a new typer broke every usage error (issue 15, item 1)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "lock_constraints.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # the file is this environment's: refresh it when they differ


def test_setup_reinstalls_when_the_pins_or_the_mode_change(tmp_path):
    (tmp_path / "scripts").mkdir()
    for name in ("scripts/setup.sh", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)

    def stamp(**env) -> str:
        import os

        proc = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh"), "--stamp"], capture_output=True,
                              text=True, env={**os.environ, **env})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    pinned = stamp()
    unpinned = stamp(UMBENET_UNPINNED="1")
    with open(tmp_path / "constraints.txt", "a") as fh:
        fh.write("somepackage==1.0\n")
    assert len({pinned, unpinned, stamp()}) == 3
    assert stamp(UMBENET_UNPINNED="1") == unpinned  # unpinned installs do not depend on the file
