"""The README runs as written: every code block marked ``offline`` (```bash offline, ```python
offline) runs, in README order, in one fresh folder holding sample_data/.

Shell blocks: each ``umbenet ...`` command (``;`` separates commands on a line, ``#`` starts a
comment) runs through the CLI's entry point in this process and must exit 0; any other command
runs in bash. Python blocks run with ``exec``. The session's tiny sample cache is copied in first,
so the README's own ``umbenet prep`` line runs as written but reuses the clips instead of redoing
33 clips of face detection.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w+)[ \t]+offline[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def offline_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, code, line number) of every block marked offline."""
    return [(m.group(1), m.group(2), text[:m.start()].count("\n") + 1) for m in FENCE.finditer(text)]


BLOCKS = offline_blocks((ROOT / "README.md").read_text())


def commands(code: str) -> list[list[str]]:
    """The commands of a shell block: ';' and newlines separate them, '#' comments are dropped."""
    out = []
    for line in code.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";")
        lexer.whitespace_split, lexer.commenters = True, "#"
        current: list[str] = []
        for token in lexer:
            if token == ";":
                out.append(current)
                current = []
            else:
                current.append(token)
        out.append(current)
    return [c for c in out if c]


def test_the_readme_has_offline_blocks_of_both_kinds():
    kinds = {lang for lang, _, _ in BLOCKS}
    assert {"bash", "python"} <= kinds, kinds
    assert commands("umbenet a --x 1 ; umbenet b  # note\n\nls 'a b'") == [["umbenet", "a", "--x", "1"],
                                                                             ["umbenet", "b"], ["ls", "a b"]]


@pytest.fixture(scope="module")
def project(tmp_path_factory, sample_cache):
    folder = tmp_path_factory.mktemp("readme-project")
    (folder / "sample_data").symlink_to(ROOT / "sample_data", target_is_directory=True)
    shutil.copytree(sample_cache, folder / "cache" / "mafw")
    return folder


@pytest.mark.parametrize("lang, code, line", BLOCKS, ids=[f"README.md:{line}" for _, _, line in BLOCKS])
def test_offline_block_runs_as_written(project, monkeypatch, lang, code, line):
    from umbenet_cli.cli import main

    monkeypatch.chdir(project)
    if lang == "python":
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
        return
    assert lang in ("bash", "sh"), f"README.md:{line}: offline blocks are bash or python, not {lang}"
    for argv in commands(code):
        if argv[0] == "umbenet":
            assert main(argv[1:]) == 0, f"README.md:{line}: {shlex.join(argv)} failed"
        else:
            proc = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, f"README.md:{line}: {shlex.join(argv)}: {proc.stderr[-2000:]}"
