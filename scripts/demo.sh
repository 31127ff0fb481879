#!/usr/bin/env bash
# Set up (idempotent) and run the main job: behaviour cloning on the CarRacing
# simulator, end to end (record → validate → shard → train → drive on unseen
# tracks → learner-driven round), then a summary table with the video and plot.
# Usage: bash scripts/demo.sh [OUT_DIR] [extra `kartplay demo` options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
out="${1:-demo}"
shift || true
# Only what an earlier demo made goes; the directory may hold other things.
rm -rf "$out/recordings" "$out/dataset" "$out/runs" "$out/models" "$out/drive"
kartplay demo --out "$out" "$@"
