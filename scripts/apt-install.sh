#!/usr/bin/env bash
# apt-install.sh PACKAGE WHY: install a Debian package with apt-get (as root, or through sudo), for the
# scripts/ensure-*.sh helpers. Says how to install it by hand when neither apt-get nor root is available.
set -euo pipefail
package="$1"
why="$2"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "mmlong: $package is missing and apt-get is not available; install $package with your package manager" >&2
  exit 1
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "mmlong: $package is missing; run as root: apt-get update && apt-get install -y $package" >&2
    exit 1
  fi
fi
echo "mmlong: installing Debian's $package ($why)" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "$package"
