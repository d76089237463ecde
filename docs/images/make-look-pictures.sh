#!/usr/bin/env bash
# Regenerates the pictures of docs/look.md with the page's own commands, on a trained quickstart run:
#   trm run recipes/quickstart_4x4.yaml --run-dir runs/quickstart
#   docs/images/make-look-pictures.sh runs/quickstart
set -euo pipefail
run="${1:-runs/quickstart}"
here="$(cd "$(dirname "$0")" && pwd)"
puzzle="3..4.4.....1..3."
trm solve "$run" "$puzzle" --halting fixed --max-steps 6 --trajectory "$here/solve-sudoku.png"
trm solve "$run" "$puzzle" --halting fixed --max-steps 6 --trajectory "$here/solve-sudoku.gif"
trm eval "$run" --trajectories 4 --limit 200 --no-progress
latest="$(ls -td "$run"/eval/trm-eval-*/trajectories | head -1)"
cp "$(ls "$latest"/trajectory-*-wrong-*.png | head -1)" "$here/eval-trajectory-wrong.png"
trm report "$run" --out "$run/report.html"
profile="$(mktemp -d)"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" --screenshot="$here/report.png" \
    --window-size=1280,1500 "file://$(realpath "$run/report.html")"
rm -rf "$profile"
