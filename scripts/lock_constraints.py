"""Write (or check) constraints.txt: the exact versions of everything umbenet needs, as installed.

pyproject.toml keeps open ranges for users who install the package; constraints.txt pins what the
tests last passed with, and ``scripts/setup.sh`` installs with it (``pip install -c``). The
packages are pyproject's dependencies and its extras' (dev, asr-fast), and what they require in
turn, read from the installed distributions' metadata: nothing else that happens to be installed.

    .venv/bin/python scripts/lock_constraints.py           # refresh, after the tests pass
    .venv/bin/python scripts/lock_constraints.py --check   # exit 1 if the file is stale
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
HEADER = ("# Exact versions the tests last passed with (scripts/lock_constraints.py writes this file;\n"
          "# scripts/setup.sh installs with it; UMBENET_UNPINNED=1 bash scripts/setup.sh installs the open\n"
          "# ranges of pyproject.toml instead). Python {python}.\n")
NOT_PINNED = {"pip", "setuptools", "umbenet"}  # the venv's own installer tools (as pip freeze), and this package


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    env = default_environment()
    return any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""}))


def roots(pyproject: Path) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def closure(reqs: list[Requirement]) -> dict[str, str]:
    """canonical name -> installed version of ``reqs`` and everything they require."""
    pinned: dict[str, str] = {}
    todo = [(r, set(r.extras)) for r in reqs if _applies(r, set())]
    missing = []
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            missing.append(req.name)
            continue
        new = name not in pinned
        pinned[name] = dist.version
        if not new and not extras:
            continue
        for line in dist.requires or []:
            sub = Requirement(line)
            if _applies(sub, extras) and (sub.marker is None or "extra" not in str(sub.marker) or extras):
                if canonicalize_name(sub.name) not in pinned or sub.extras:
                    todo.append((sub, set(sub.extras)))
    if missing:
        sys.exit(f"not installed here: {sorted(set(missing))}; install the project first (scripts/setup.sh)")
    return {k: v for k, v in pinned.items() if k not in NOT_PINNED}


def render(pins: dict[str, str]) -> str:
    python = ".".join(map(str, sys.version_info[:2]))
    return HEADER.format(python=python) + "".join(f"{n}=={v}\n" for n, v in sorted(pins.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if constraints.txt differs from this environment")
    parser.add_argument("--out", type=Path, default=ROOT / "constraints.txt")
    args = parser.parse_args()
    text = render(closure(roots(ROOT / "pyproject.toml")))
    if args.check:
        if not args.out.is_file() or args.out.read_text() != text:
            print(f"{args.out} is stale: run `.venv/bin/python scripts/lock_constraints.py`", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out} ({text.count(chr(10)) - HEADER.count(chr(10))} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
