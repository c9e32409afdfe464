#!/usr/bin/env bash
# Installs Debian's espeak-ng (real synthetic speech for the speech-recognition tests and NIAVH speech needles)
# with apt-get when it is missing. Safe to run again. Needs root (or sudo) the first time.
set -euo pipefail
if command -v espeak-ng >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "mmlong: espeak-ng is missing and apt-get is not available; install espeak-ng with your package manager" >&2
  exit 1
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "mmlong: espeak-ng is missing; run as root: apt-get update && apt-get install -y espeak-ng" >&2
    exit 1
  fi
fi
echo "mmlong: installing Debian's espeak-ng for the speech tests" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends espeak-ng
command -v espeak-ng >/dev/null 2>&1 || { echo "mmlong: espeak-ng installed but not on PATH" >&2; exit 1; }
