#!/usr/bin/env bash
# Installs, builds, and runs every test. This is the command CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
