#!/usr/bin/env bash
# Installs every Debian 12 package signround needs to build, test and run.
# Idempotent and non-interactive: run it as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git clang-format
  # engine
  libtorch-dev libopenblas0-pthread
  libsentencepiece-dev  # tokenizer.model (src/tokenizer)
  libicu-dev  # tokenizer.json pre-tokenizer regexes (src/tokenizer)
  # service
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libcurl4-openssl-dev libssl-dev libsqlite3-dev libcpp-httplib-dev
  # tests
  libgtest-dev libgmock-dev python3
  # tests: a Python client of the job service (stubs generated at test time)
  python3-grpcio python3-grpc-tools
  python3-prometheus-client  # tests: parses /metrics output (tests/unit/metrics)
  # tests: a real S3 API server on loopback (Swift + s3api, tests/s3/swift_server.sh)
  swift swift-proxy swift-object swift-container swift-account python3-swift memcached curl
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
