#!/usr/bin/env bash
# The GPU machine's measurements of the open performance issues, as one prepared run (a lent
# machine has 15 minutes of device time per session, start-up included: this takes about 8).
#
# Here, in a built checkout (npm run build):
#   ../shared/tools/gpu-carry.sh                  # node, the built project, the Vulkan loader -> .gpu/
#   (cd .gpu && apt-get download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)   # NVIDIA's Vulkan ICD needs libglvnd
#   cp ../shared/tools/torch_ibot_bench.py .gpu/   # the PyTorch peer of the iBOT step
# There (the device tool's run, carry [".gpu"]):
#   bash bench/device-run.sh
# Everything lands in $OUT: log.txt and one JSON per measurement, named as in benchmarks/results/.
set -u
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
# shellcheck disable=SC1091
. .gpu/unpack.sh || exit 1
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
cp .gpu/*.py /tmp/app/ 2>/dev/null
cd /tmp/app || exit 1
lscpu | grep -E 'Model name|Thread|Core|Socket' ; grep -o -w -E 'avx512f|amx_tile|fma' /proc/cpuinfo | sort | uniq -c
date=$(date -u +%F)
t0=$SECONDS
# Each step: a time limit, the command; a failure is logged and the run goes on.
j() { echo "== $*"; timeout "$1" "${@:2}" 2>&1 | grep -v artificially; echo "rc=${PIPESTATUS[0]} t=$((SECONDS - t0))s"; }

# WebGPU: the bench step at batch 64 and 256 (targets 300 img/s at 64), the paper's ViT-S/16 step at 64 (target 70).
j 90 node dist/bench/step.js --backend webgpu --steps 6 --out "$OUT/gpu-h200-bench-b64-$date.json"
j 90 node dist/bench/step.js --backend webgpu --steps 5 --batch 256 --out "$OUT/gpu-h200-bench-b256-$date.json"
j 150 node dist/bench/step.js --backend webgpu --steps 3 --config vit-s16 --out "$OUT/gpu-h200-vit-s16-b64-$date.json"
# The host CPU pinned to 2 and 4 cores: ibotlab (wasm) against PyTorch 2.11, interleaved (goal: half of PyTorch).
for c in 2 4; do
  j 150 node dist/bench/vs-pytorch.js --pin --cores "$c" --rounds 2 --steps 5 --peer /tmp/app/torch_ibot_bench.py --python python3 \
    --out "$OUT/cpu-vs-pytorch-intel-h200-host-${c}cores-$date.json"
done
# Thread scaling of the wasm step on the whole host (our kernels are not capped at tfjs-wasm's 8 threads).
j 120 env IBOTLAB_BACKEND=wasm node dist/bench/step.js --backend wasm --threads 1,4,8,16 --steps 4 --out "$OUT/cpu-threads-intel-h200-host-$date.json"
echo "== done t=$((SECONDS - t0))s"
