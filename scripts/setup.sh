#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine: system packages, then a
# virtual environment in .venv with kartkit installed editable.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # the real emulator, headless (plugin tests)
  libmupen64plus-dev libmupen64plus2 mupen64plus-ui-console mupen64plus-rsp-hle
  mupen64plus-video-rice mupen64plus-audio-sdl mupen64plus-data
  # every Debian video plugin, for benchmarks/emuframes.py's survey (Glide64 shows
  # a CPU-drawn frame buffer, for its frame-age run)
  mupen64plus-video-glide64 mupen64plus-video-glide64mk2 mupen64plus-video-z64
  mupen64plus-video-arachnoid
  # building and fuzzing the C plugin
  build-essential clang libclang-rt-14-dev binutils-mips-linux-gnu
  # a real X display for capture / recorder / desktop-detector tests
  xvfb xauth xdotool x11-utils xterm libgl1-mesa-dri
  # real desktop programs for the desktop-behind-window evaluation set (issue 3)
  x11-apps x11-xserver-utils
  # SDL for pygame and the simulator
  libsdl2-2.0-0 swig
  # SuperTuxKart 1.4, the real 3D game (kartplay.stk; ~650 MB with its data)
  supertuxkart supertuxkart-data
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.kartkit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev,sim,record,ray,uinput,fast]"
  touch "$stamp"
fi
