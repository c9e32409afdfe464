#!/usr/bin/env bash
# The README's test command: installs what the suite needs (the venv, Debian's chromium for the demo's
# browser test, Debian's espeak-ng for the speech tests, .venv-lmms for the lmms-eval bridge test) and runs it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/ensure-venv.sh"
bash "$root/scripts/ensure-browser.sh"
bash "$root/scripts/ensure-espeak.sh"   # Debian's espeak-ng: real speech for the ASR tests and NIAVH speech needles
bash "$root/scripts/ensure-lmms-venv.sh"  # lmms-eval in its own venv, for the lmms-eval bridge test
cd "$root"
exec "$root/.venv/bin/python" -m pytest -q "$@"
