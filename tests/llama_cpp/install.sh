#!/usr/bin/env bash
# Installs llama.cpp for tests/integration/llama_cpp_test.cc: the npm package
# node-llama-cpp and its prebuilt CPU binary for linux-x64 (@node-llama-cpp/linux-x64),
# exactly as package-lock.json pins them, into tests/llama_cpp/node_modules.
#
# Nothing is downloaded but npm packages and nothing is compiled: node-llama-cpp's
# postinstall (which could fetch llama.cpp's sources from GitHub and build them) is
# turned off (NODE_LLAMA_CPP_SKIP_DOWNLOAD, and "nodeLlamaCppPostinstall": "skip" in
# package.json), and the optional GPU (CUDA, Vulkan) and other-platform binaries,
# about 650 MB, are left out (--omit=optional; linux-x64 is a direct dependency).
#
# Without node >= 20 and npm (Debian 12's own nodejs is 18), or on another platform,
# it prints one line and exits 0: the llama.cpp tests then skip. Idempotent: it does
# nothing when node_modules already holds this package-lock.json's install.
set -euo pipefail
cd "$(dirname "$0")"

skip() {
  echo "tests/llama_cpp: $1; the llama.cpp tests will skip"
  exit 0
}
command -v node >/dev/null 2>&1 || skip "no node"
command -v npm >/dev/null 2>&1 || skip "no npm"
major=$(node -p 'process.versions.node.split(".")[0]')
((major >= 20)) || skip "node $(node --version) is older than 20 (node-llama-cpp needs >= 20)"
[[ "$(uname -s)-$(uname -m)" == Linux-x86_64 ]] ||
  skip "no prebuilt llama.cpp pinned for $(uname -s)-$(uname -m) (linux-x64 only)"

stamp=node_modules/.signround-install-stamp
if [[ -f $stamp ]] && cmp -s package-lock.json "$stamp"; then
  exit 0
fi
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
npm ci --omit=optional --no-audit --no-fund --loglevel=error
# The prebuilt binary must load as it is (build "never": no fallback to a build).
info=$(node llama_score.mjs --check)
cp package-lock.json "$stamp"
echo "tests/llama_cpp: installed node-llama-cpp $(node -p 'require("./node_modules/node-llama-cpp/package.json").version'): $info"
