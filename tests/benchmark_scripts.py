"""Load a script of benchmarks/controlled/ as a module, for the tests of the ones CI checks."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

CONTROLLED = Path(__file__).resolve().parents[1] / "benchmarks" / "controlled"


def load_script(name: str) -> ModuleType:
    """benchmarks/controlled/<name>.py, imported under ``name``."""
    spec = importlib.util.spec_from_file_location(name, CONTROLLED / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
