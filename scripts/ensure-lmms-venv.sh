#!/usr/bin/env bash
# Creates .venv-lmms at the repository root with lmms-eval and mmlong (extra "lmms") for the lmms-eval bridge
# test. lmms-eval pins av to 15.x, so it lives apart from the main .venv. Safe to run again: it reinstalls only
# when pyproject.toml is newer than the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv-lmms"
stamp="$venv/.mmlong-installed"
if [ ! -x "$venv/bin/python" ]; then
  echo "mmlong: creating $venv for the lmms-eval bridge" >&2
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "mmlong: installing lmms-eval into $venv (first run takes several minutes)" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip
  # torch and torchvision first, pinned to the CPU-capable wheels this machine kind serves from local disk
  "$venv/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  "$venv/bin/python" -m pip install -q -e ".[lmms]"
  touch "$stamp"
fi
