#!/usr/bin/env bash
# Installs the Debian packages signround needs and builds it into build/.
# Executables land in build/bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
# --- deploy ---
# SIGNROUND_CMAKE_ARGS: extra CMake cache entries for build/ (the Dockerfile passes
# "-DSIGNROUND_BUILD_TESTS=OFF -DSIGNROUND_BUILD_BENCH=OFF"); the configure below keeps them.
# A CUDA LibTorch is found through the environment's CMAKE_PREFIX_PATH.
if [ -n "${SIGNROUND_CMAKE_ARGS:-}" ]; then
  read -r -a extra_cmake_args <<<"$SIGNROUND_CMAKE_ARGS"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${extra_cmake_args[@]}"
fi
# --- end deploy ---
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
