#!/usr/bin/env bash
# The README's test command: installs what the suite needs (the venv, and Debian's chromium for the demo's
# browser test) and runs it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/ensure-venv.sh"
bash "$root/scripts/ensure-browser.sh"
cd "$root"
exec "$root/.venv/bin/python" -m pytest -q "$@"
