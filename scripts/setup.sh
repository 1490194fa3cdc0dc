#!/usr/bin/env bash
# Set up everything the toolkit needs on a fresh Debian/Ubuntu machine; safe to run again.
#   - system ffmpeg (and espeak-ng, used only to regenerate sample_data/) where missing
#   - pocketsphinx-testdata (real speech for the ASR tests) where missing
#   - a virtual environment in .venv with the package installed in editable mode, at the exact
#     versions of constraints.txt (UMBENET_UNPINNED=1: pyproject.toml's open ranges instead)
#   bash scripts/setup.sh --stamp   prints what decides a reinstall, and changes nothing
set -euo pipefail
cd "$(dirname "$0")/.."

# Reinstall only when the dependency list, the pinned versions or the pinning mode changed.
CONSTRAINTS=constraints.txt
if [ -n "${UMBENET_UNPINNED:-}" ]; then
  pin_args=(); pinning=unpinned
else
  [ -f "$CONSTRAINTS" ] || { echo "setup: $CONSTRAINTS is missing (UMBENET_UNPINNED=1 installs without it)" >&2; exit 2; }
  pin_args=(-c "$CONSTRAINTS"); pinning=$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)
fi
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $pinning"
if [ "${1:-}" = "--stamp" ]; then echo "$want"; exit 0; fi

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
# Real speech for the ASR tests (five LibriVox recordings with their transcription).
dpkg -s pocketsphinx-testdata >/dev/null 2>&1 || need_apt+=(pocketsphinx-testdata)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv

stamp=.venv/.umbenet-setup
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "${pin_args[@]}" -e '.[dev]'
  echo "$want" > "$stamp"
fi
echo "setup: ready (.venv, $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
