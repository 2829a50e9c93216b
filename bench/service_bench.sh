#!/usr/bin/env bash
# The job service's API latency (bench/service_bench.cc): starts a signround-server on
# loopback with a data dir under /tmp and one cpu slot, runs bench_service against it and
# prints its figures. Builds nothing: build `signround-server signround-worker bench_service`
# first (cmake -DSIGNROUND_BUILD_BENCH=ON).
#
# The server's worker is a stand-in that sleeps (the engine is not what is measured), so
# the first job holds the slot and every later job stays QUEUED until cancelled.
#
#   bench/service_bench.sh [BUILD_DIR] [-- bench_service flags: --rate 50 --seconds 10
#                                          --watchers 1,10,100 --trials 20]
#
# SERVER_ARGS adds flags to the server's command line (e.g. --max-watches-per-tenant=0).
# The README's figures: --watchers 1,10,100,500,5000.
set -euo pipefail
BUILD=build
if [ $# -gt 0 ] && [ "$1" != "--" ]; then BUILD=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
for bin in signround-server signround-worker bench_service; do
  if [ ! -x "$BUILD/bin/$bin" ]; then
    echo "service_bench.sh: $BUILD/bin/$bin missing; build it first" >&2
    exit 2
  fi
done

WORK=$(mktemp -d /tmp/signround-bench-service-XXXXXX)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BUILD/bin/signround-worker" make-test-model --out "$WORK/model" --hidden 64 \
  --intermediate 128 --layers 2 --heads 2 --kv-heads 1 --vocab 128 >/dev/null
printf '#!/bin/sh\nexec sleep 3600\n' >"$WORK/sleeping-worker"
chmod +x "$WORK/sleeping-worker"

"$BUILD/bin/signround-server" --listen=127.0.0.1:0 --metrics-listen=127.0.0.1:0 \
  --data-dir="$WORK/data" --devices=cpu --worker-bin="$WORK/sleeping-worker" \
  --cancel-grace-seconds=2 ${SERVER_ARGS:-} >"$WORK/ready" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 600); do
  if [ -s "$WORK/ready" ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
  sleep 0.1
done
grpc=$(sed -n 's/.*"grpc":"\([^"]*\)".*/\1/p' "$WORK/ready" | head -1)
if [ -z "$grpc" ]; then
  echo "service_bench.sh: no ready line from signround-server; its log:" >&2
  tail -20 "$WORK/server.log" >&2
  exit 1
fi
echo "signround-server at $grpc ($(nproc) CPUs here; client and server share them)"
"$BUILD/bin/bench_service" --server "$grpc" --model-uri "file://$WORK/model" \
  --output-uri "file://$WORK/out" "$@"
