#!/usr/bin/env bash
# Installs Debian's chromium (for the demo's browser test) with apt-get when /usr/bin/chromium is missing.
# Playwright drives this system browser; a browser downloaded by `playwright install` is not used.
# Safe to run again. Needs root (or sudo) the first time.
set -euo pipefail
browser="${MMLONG_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$browser" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "mmlong: $browser is missing and apt-get is not available; install chromium with your package manager" >&2
  exit 1
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "mmlong: $browser is missing; run as root: apt-get update && apt-get install -y chromium" >&2
    exit 1
  fi
fi
echo "mmlong: installing Debian's chromium for the browser test (takes a minute or two)" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends chromium
if [ ! -x "$browser" ]; then
  echo "mmlong: chromium installed but $browser was not found" >&2
  exit 1
fi
