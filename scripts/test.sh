#!/usr/bin/env bash
# Installs, builds, and runs every test. This is the command CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
# llama.cpp from npm (node-llama-cpp) for llama_cpp_test; one line and a skip without node >= 20.
./tests/llama_cpp/install.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
# The libFuzzer targets (tests/fuzz), 20 seconds each: about 3 minutes on 2 cores, cold build included.
./scripts/fuzz.sh --seconds 20
