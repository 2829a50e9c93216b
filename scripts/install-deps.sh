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
  openssl  # tests: a throwaway TLS PKI (tests/testing/tls_pki.h, tests/e2e/python_client_test.py)
  # tests: a Python client of the job service (stubs generated at test time)
  python3-grpcio python3-grpc-tools
  # tests and users: clients/python installs into a venv with Debian's pip, offline
  python3-venv python3-pip python3-setuptools python3-wheel
  python3-prometheus-client  # tests: parses /metrics output (tests/unit/metrics)
  # tests: llama.cpp's gguf-py dequantizes our GGUF files (tests/testing/llama_gguf_py.h)
  python3-numpy
  # tests: a real S3 API server on loopback (Swift + s3api, tests/s3/swift_server.sh)
  swift swift-proxy swift-object swift-container swift-account python3-swift memcached curl
)

# --- postgres ---
# libpq for the Postgres job store (src/store/postgres_db.cc); the server for the tests, which
# start their own on loopback (tests/postgres/postgres_server.sh; setpriv is util-linux).
PACKAGES+=(libpq-dev postgresql-15)
# --- end postgres ---

# --- fuzz ---
# scripts/fuzz.sh: the libFuzzer targets of tests/fuzz, built with clang 14; libclang-rt-14-dev
# holds libFuzzer and the ASan/UBSan runtimes (only a recommendation of clang-14's, which
# --no-install-recommends skips), llvm-14 the llvm-symbolizer for file:line in sanitizer
# reports. Build-time only.
PACKAGES+=(clang-14 libclang-rt-14-dev llvm-14)
# --- end fuzz ---

# --- deploy ---
# tests/deploy: yamllint and python3-yaml check the Kubernetes manifests, rendered by the
# kubectl on PATH, else Debian's kubernetes-client.
PACKAGES+=(yamllint python3-yaml)
# tests: a real Prometheus scrapes the server; promtool checks and unit-tests
# deploy/prometheus/alerts.yaml (tests/e2e/prometheus_scrape_test.py, prometheus_rules_test).
PACKAGES+=(prometheus)
# tests: the web dashboard in a real headless browser (tests/e2e/dashboard_test.py).
PACKAGES+=(chromium chromium-driver python3-selenium)
if ! command -v kubectl >/dev/null 2>&1; then PACKAGES+=(kubernetes-client); fi
# SIGNROUND_LIBTORCH=external (the Dockerfile's CUDA build): LibTorch is found through
# CMAKE_PREFIX_PATH, so Debian's CPU LibTorch is neither installed nor shipped.
# --runtime: only what the executables load at run time (the Docker image's runtime stage).
RUNTIME_PACKAGES=(
  ca-certificates  # https to S3
  libgrpc++1.51 libprotobuf32 libabsl20220623 libspdlog1.10 libfmt9 libcpp-httplib0.11
  libcurl4 libssl3 libsqlite3-0 libpq5
  libicu72 libsentencepiece0  # tokenizers (libsentencepiece.so.0 is opened with dlopen)
  libtorch1.13 libopenblas0-pthread  # Debian's CPU LibTorch
)
drop_packages() {  # drop_packages NAME...: removes NAMEs from PACKAGES
  local keep=() p d
  for p in "${PACKAGES[@]}"; do
    for d in "$@"; do [ "$p" = "$d" ] && continue 2; done
    keep+=("$p")
  done
  PACKAGES=("${keep[@]}")
}
if [ "${1:-}" = --runtime ]; then PACKAGES=("${RUNTIME_PACKAGES[@]}"); fi
if [ "${SIGNROUND_LIBTORCH:-debian}" = external ]; then
  drop_packages libtorch-dev libtorch1.13 libopenblas0-pthread
fi
if [ "${1:-}" = --runtime ]; then  # installed here: later additions to PACKAGES are build-only
  echo "install-deps: runtime packages ${PACKAGES[*]}"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
  exit 0
fi
# --- end deploy ---

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
