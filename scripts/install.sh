#!/usr/bin/env bash
# Installs what postfx needs on a fresh Debian/Ubuntu machine: Mesa (EGL + llvmpipe for
# headless GL), Xvfb for window tests, then the package itself. Usage:
#   bash scripts/install.sh            runtime only
#   bash scripts/install.sh dev        + torch (CPU), training, ONNX and test extras, and the
#                                      test suite's judges: the Khronos reference GLSL compiler
#                                      (glslang-tools) and a second GL driver, zink over
#                                      lavapipe (mesa-vulkan-drivers)
set -euo pipefail
cd "$(dirname "$0")/.."
debs=(libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libglx-mesa0 xvfb xauth libxtst6)
if [ "${1:-}" = dev ]; then
  debs+=(glslang-tools mesa-vulkan-drivers)
fi
missing=()
for d in "${debs[@]}"; do dpkg -s "$d" >/dev/null 2>&1 || missing+=("$d"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
python3 -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if [ "${1:-}" = dev ]; then
  # CPU build of torch; a bare `torch` requirement would pull a multi-GB CUDA build.
  python3 -c "import torch" 2>/dev/null || python3 -m pip install -q "torch==2.13.0"
  # onnxscript: torch's default (dynamo) ONNX exporter, which tests/test_onnx.py exercises
  python3 -m pip install -q -e ".[train,onnx,test,examples,bench]" onnxscript
else
  python3 -m pip install -q -e .
fi
