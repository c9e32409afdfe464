#!/usr/bin/env bash
# The README's main job: ask the offline default a question about a real sample video.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/ensure-venv.sh"
video="$("$root/.venv/bin/python" -c 'from mmlong.samples import sample_video; print(sample_video("bigbuckbunny"))')"
exec "$root/.venv/bin/mmlong" info "$video" "$@"
