#!/usr/bin/env bash
# The README's test command: installs what the suite needs and runs it, after the linter.
#
#   bash scripts/test.sh          # everything (what CI runs): the venv, Debian's chromium for the demo's browser
#                                 # test, Debian's espeak-ng for the speech tests, .venv-lmms for the lmms-eval
#                                 # bridge test, then ruff and the whole suite
#   bash scripts/test.sh --fast   # the edit loop: ruff and every test not marked slow, browser or lmms
#                                 # (no browser, no lmms venv, no real Gemma)
#
# Other arguments go to pytest (e.g. bash scripts/test.sh --fast tests/test_tome.py -x).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fast=0
if [ "${1:-}" = "--fast" ]; then
  fast=1
  shift
fi
bash "$root/scripts/ensure-venv.sh"
bash "$root/scripts/ensure-espeak.sh"   # Debian's espeak-ng: real speech for the ASR tests and NIAVH speech needles
cd "$root"
# idle OpenMP workers sleep instead of spinning (see mmlong/cpu_threads.py; pytest imports torch before any CLI runs)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
"$root/.venv/bin/python" -m ruff check .  # lint first: CI fails on a lint error
if [ "$fast" -eq 1 ]; then
  exec "$root/.venv/bin/python" -m pytest -q -m "not slow and not browser and not lmms" "$@"
fi
bash "$root/scripts/ensure-browser.sh"
bash "$root/scripts/ensure-lmms-venv.sh"  # lmms-eval in its own venv, for the lmms-eval bridge test
exec "$root/.venv/bin/python" -m pytest -q "$@"
