#!/usr/bin/env bash
# Installs, builds and runs the main job on embedded defaults. For now the main
# job is inspecting a checkpoint: it writes a random-initialised Llama
# checkpoint and prints its architecture and per-layer quantization plan.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
rm -rf build/demo-model
build/bin/signround-worker make-test-model --out build/demo-model
build/bin/signround-worker inspect --model build/demo-model --bits 4 --group-size 128
