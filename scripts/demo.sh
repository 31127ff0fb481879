#!/usr/bin/env bash
# Set up (idempotent) and run the main job on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
out="${1:-demo}"
rm -rf "$out/recordings"
kartdata sample --out "$out/recordings" --frames 300
kartdata shard "$out/recordings" --out "$out/dataset" --trust-pickle
kartdata info "$out/dataset"
