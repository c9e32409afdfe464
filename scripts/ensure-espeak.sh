#!/usr/bin/env bash
# Installs Debian's espeak-ng (real synthetic speech for the speech-recognition tests and NIAVH speech needles)
# with apt-get when it is missing. Safe to run again. Needs root (or sudo) the first time.
set -euo pipefail
if command -v espeak-ng >/dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" espeak-ng "speech for the ASR tests and NIAVH speech needles"
command -v espeak-ng >/dev/null 2>&1 || { echo "mmlong: espeak-ng installed but not on PATH" >&2; exit 1; }
