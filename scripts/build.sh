#!/usr/bin/env bash
# Installs the Debian packages signround needs and builds it into build/.
# Executables land in build/bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
