#!/usr/bin/env bash
# Creates .venv at the repository root and installs mmlong into it (editable, with the sample media and test
# extras) unless it is already there and up to date with pyproject.toml. Safe to run again.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
stamp="$venv/.mmlong-installed"
if [ ! -x "$venv/bin/python" ]; then
  echo "mmlong: creating $venv" >&2
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "mmlong: installing into $venv (first run takes a few minutes)" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip
  # torch and torchvision first, pinned to the CPU-capable wheels this machine kind serves from local disk
  "$venv/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  "$venv/bin/python" -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
