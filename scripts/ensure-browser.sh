#!/usr/bin/env bash
# Installs Debian's chromium (for the demo's browser test) with apt-get when /usr/bin/chromium is missing.
# Playwright drives this system browser; a browser downloaded by `playwright install` is not used.
# Safe to run again. Needs root (or sudo) the first time.
set -euo pipefail
browser="${MMLONG_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$browser" ]; then
  exit 0
fi
bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" chromium "for the browser test; takes a minute or two"
if [ ! -x "$browser" ]; then
  echo "mmlong: chromium installed but $browser was not found" >&2
  exit 1
fi
