#!/usr/bin/env bash
# One-shot check of postfx on a Linux machine with an NVIDIA GPU and no network, in at
# most 8 minutes (every step under `timeout`, the limits adding up to 480 s): the
# renderer must be the GPU, the GL parity tests pass there, `postfx tune` picks the
# kernels, and `postfx bench` times the reference U-Net (depth 4, ngf 16) at 1080p and
# 4K for every kernel variant, the tuned "auto", fp16 storage, and torch-CUDA fp32 /
# fp16 with and without the GL <-> torch copies. Results go to
# benchmarks/results/<gpu>/ (and to $OUT when set).
#
# POSTFX_GPU_CHECK_DRY_RUN=1 runs the same steps on whatever renderer there is (llvmpipe
# too), at small frames, into build/gpu-check-dry/: a check of this script, not of a GPU.
#
# Preparation, on a machine with network, in the repository root (the GPU machine gets
# the checkout with .gl/ and .whl/ beside it; its python3 is 3.12 with numpy, torch,
# pillow, safetensors, pytest, hypothesis and matplotlib already installed):
#
#   echo /.gl/ >> .git/info/exclude; echo /.whl/ >> .git/info/exclude
#   # the GL / EGL loaders (glvnd) the NVIDIA driver's EGL library plugs into
#   mkdir -p .gl /tmp/amd64/partial
#   o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
#   apt-get $o update
#   (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
#   # the Python packages that machine lacks, for CPython 3.12 on x86-64, and postfx itself
#   plat="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       $plat -d .whl moderngl==5.13.0 glcontext==3.1.0 glfw==2.11.0 imageio-ffmpeg==0.8.1
#   python3 -m pip wheel --no-deps -w .whl .
#
# Then run `bash scripts/gpu-check.sh` there (the device tool: carry .gl and .whl).
# Exit status: 0 when every step passed; the first failing step's status otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
log_dir="${OUT:-$PWD/build/gpu-check}"
mkdir -p "$log_dir"
log="$log_dir/gpu-check.log"
: > "$log"
status=0

say() { echo "== $*" | tee -a "$log"; }
elapsed() { echo $(( $(date +%s) - started )); }
# step NAME SECONDS COMMAND...: run under timeout, output to the terminal and the log.
step() {
    local name=$1 seconds=$2
    shift 2
    say "$name (at $(elapsed) s, at most $seconds s)"
    timeout -k 10 "$seconds" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || { say "$name FAILED (status $rc)"; [ "$status" != 0 ] || status=$rc; }
    return "$rc"
}

# 1. Libraries: the glvnd loaders, and where the NVIDIA driver's EGL vendor file lives.
if compgen -G ".gl/*.deb" > /dev/null; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
nvidia_egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$nvidia_egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$nvidia_egl"

# 2. postfx and the packages the machine lacks, from the prepared wheels.
if compgen -G ".whl/*.whl" > /dev/null; then
    step "install wheels" 60 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/postfx-site .whl/*.whl || exit "$status"
    export PYTHONPATH=/tmp/postfx-site
fi
export PYTHONUNBUFFERED=1 POSTFX_CACHE_DIR="$log_dir/cache"
if [ -n "${POSTFX_GPU_CHECK_DRY_RUN:-}" ]; then
    require_gpu=False; tune_sizes="256x256 320x192"; bench_sizes="256 320x192"; tests_k="B5 or C18"
    results_root=build/gpu-check-dry
else
    require_gpu=True; tune_sizes="1920x1080 3840x2160"; bench_sizes="1080p 4k"; tests_k="not C20"
    results_root=benchmarks/results
fi

# 3. The renderer: must be the GPU, not a CPU fallback.
step "renderer" 30 python3 -c "
from postfx.gl.context import headless_context, renderer
print(renderer(headless_context(require_gpu=$require_gpu)))" || exit "$status"
step "postfx info --gl" 30 python3 -m postfx info --gl ink --size "${tune_sizes%% *}"
gpu=$(python3 -c "
import re
from postfx.gl.context import headless_context
name = headless_context().info['GL_RENDERER'].split('/')[0]
print(re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-').lower())" 2>/dev/null)
results="$results_root/${gpu:-gpu}"
mkdir -p "$results"
say "results in $results"

# 4. GL parity on the real driver (tuner and cache tests included; timings stay off here),
# and the demo scene's motion vectors and the temporal resolve against their references.
step "GL parity tests" 120 python3 -m pytest -q -x -p no:cacheprovider tests/test_gl_ops.py \
    tests/test_gl_network.py tests/test_gl_norm.py tests/test_driver.py tests/test_tuner.py \
    tests/test_scene_motion.py tests/test_temporal_pass.py -k "$tests_k"

# 5. Kernel choice by measurement (the bundled ink style is the reference U-Net's shape).
for size in $tune_sizes; do
    step "postfx tune $size" 45 bash -o pipefail -c 'python3 -m postfx tune ink --size "$0" | tee -a "$1"' \
        "$size" "$results/tune.txt"
done

# 6. The benchmark: every variant, auto, fp16 storage, torch-CUDA with and without copies.
# shellcheck disable=SC2086  (the sizes are separate words)
step "postfx bench" 150 python3 -m postfx bench --depths 4 --ngf 16 --sizes $bench_sizes \
    --backends gl-naive gl-tiled gl-blocked gl-cooperative gl-opt gl-auto gl-auto-fp16 \
               torch-cuda torch-cuda+copies torch-cuda-fp16 torch-cuda-fp16+copies \
    --repeat 10 --warmup 3 --max-seconds-per-cell 5 --label gpu-check --out "$results" \
    --note "scripts/gpu-check.sh"

cp "$log" "$results/gpu-check.log"
if [ -n "${OUT:-}" ]; then
    cp "$results"/gpu-check.* "$results"/tune.txt "$OUT"/ 2>/dev/null
fi
say "done in $(elapsed) s, status $status"
exit "$status"
