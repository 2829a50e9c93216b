#!/bin/bash
# GPU tuning speed, ours and the reference tool's side by side, in one call on a GPU machine
# (issue 21). Prepared here by bench/gpu/prepare.sh; run there from the repository root:
#
#   bash bench/gpu/run.sh            (ITERS=50 by default; QUICK=1: the smoke stage only)
#
# 1. the card, driver, torch and transformers versions; the measured bf16 matrix rate
#    (peak_tflops.py), the ceiling of the floor;
# 2. builds bench_block_tuning against the machine's PyTorch (torch.utils.cmake_prefix_path)
#    with the engine-only configuration (no worker, service or tests) and .device-deps/root;
# 3. a smoke stage on a small block (seconds: both sides' code paths, before the long run);
# 4. the Llama-3-8B-shaped block (hidden 4096, intermediate 14336, 32/8 heads) at 8 x 2048
#    tokens, W4 G128 sym, ITERS iterations: ours (3 repeats), then the reference eager and
#    with torch.compile, on the same saved model and token rows (reference_block.py);
# 5. the table (table.py). Everything is also written under $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}
ITERS=${ITERS:-50}
WORK=${WORK:-/tmp/signround-gpu-bench}
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/run.log") 2>&1
export PYTHONUNBUFFERED=1
DEPS=$PWD/.device-deps
step() { echo; echo "=== $* ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'
[ -d "$DEPS/root" ] && [ -d "$DEPS/auto-round/auto_round" ] ||
  { echo "error: .device-deps is missing: run bench/gpu/prepare.sh here and carry .device-deps"; exit 2; }
echo "auto-round: $(cat "$DEPS/auto-round/COMMIT.txt")"
PEAK=$(python3 bench/gpu/peak_tflops.py) || { echo "error: peak_tflops.py failed"; exit 2; }
echo "bf16 matrix rate: $PEAK TFLOP/s"

step "build"
TORCH_PREFIX=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
export LD_LIBRARY_PATH="$DEPS/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
configure() {
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSIGNROUND_BUILD_TESTS=OFF -DSIGNROUND_BUILD_SERVICE=OFF -DSIGNROUND_BUILD_WORKER=OFF \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DTORCH_CUDA_ARCH_LIST=9.0 \
    -Dabsl_DIR="$DEPS/root/usr/lib/x86_64-linux-gnu/cmake/absl" \
    -Dnlohmann_json_DIR="$DEPS/root/usr/share/cmake/nlohmann_json" \
    -DCLI11_DIR="$DEPS/root/usr/share/cmake/CLI11" "$@"
}
configure >/dev/null && cmake --build build-gpu --target bench_block_tuning -j 16 || {
  echo "note: the build with the CUDA allocator's statistics failed; building without them"
  configure -DSIGNROUND_BENCH_CUDA_STATS=OFF && cmake --build build-gpu --target bench_block_tuning -j 16
} || { echo "error: bench_block_tuning did not build"; exit 2; }
BENCH=build-gpu/bin/bench_block_tuning
export PYTHONPATH="$DEPS/auto-round${PYTHONPATH:+:$PYTHONPATH}"

sides() {  # $1: label; the rest: reference_block.py shape flags
  local label=$1 iters=$2 repeats=$3; shift 3
  python3 bench/gpu/reference_block.py --out "$WORK/$label" --make-only "$@" || return 1
  $BENCH --checkpoint "$WORK/$label/model" --calibration "$WORK/$label/calib.jsonl" \
    --device cuda:0 --batch-size 8 --iters "$iters" --repeats "$repeats" --peak-tflops "$PEAK" \
    --json "$OUT/$label-signround.json"
  python3 bench/gpu/reference_block.py --out "$WORK/$label" --iters "$iters" \
    --json "$OUT/$label-reference.json" "$@"
  python3 bench/gpu/reference_block.py --out "$WORK/$label" --iters "$iters" --compile \
    --json "$OUT/$label-reference-compile.json" "$@"
  python3 bench/gpu/table.py --peak-tflops "$PEAK" "$OUT/$label-signround.json" \
    "$OUT/$label-reference.json" "$OUT/$label-reference-compile.json"
}

step "smoke: hidden 512, 2 x 256 tokens, 5 iterations"
sides smoke 5 1 --hidden 512 --intermediate 1024 --heads 8 --kv-heads 2 --vocab 1024 \
  --nsamples 8 --seqlen 256
[ "${QUICK:-0}" = 1 ] && exit 0

step "Llama-3-8B block: 8 x 2048 tokens, W4 G128 sym, $ITERS iterations"
sides llama3-8b "$ITERS" 3
nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw --format=csv
step "done"
