#!/usr/bin/env bash
# Creates .venv-lmms at the repository root with lmms-eval and mmlong (extra "lmms") for the lmms-eval bridge
# test. lmms-eval pins av to 15.x, so its own packages live apart from the main .venv; torch and the other heavy
# packages it shares with .venv are not installed twice: a .pth file puts .venv's site-packages after its own on
# sys.path (its own av 15.x wins; torch comes from .venv). Safe to run again: it reinstalls only when
# pyproject.toml is newer than the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv-lmms"
stamp="$venv/.mmlong-installed"
if [ ! -x "$venv/bin/python" ]; then
  echo "mmlong: creating $venv for the lmms-eval bridge" >&2
  python3 -m venv "$venv"
fi
main_site="$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
lmms_site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$main_site" > "$lmms_site/mmlong-main-venv.pth"  # after its own site-packages: shared torch, own av
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "mmlong: installing lmms-eval into $venv (first run takes several minutes)" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip
  # torch, torchvision and what else .venv holds are found through the .pth file and not installed again
  "$venv/bin/python" -c 'import torch, torchvision' \
    || { echo "mmlong: .venv has no torch; run scripts/ensure-venv.sh first" >&2; exit 1; }
  "$venv/bin/python" -m pip install -q -e ".[lmms]"
  touch "$stamp"
fi
