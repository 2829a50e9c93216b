#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang with ASan + UBSan) in build-fuzz/
# and runs each on a copy of its seed corpus. See --help.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(safetensors_header_fuzz model_config_fuzz gguf_check_fuzz job_request_fuzz
  storage_uri_fuzz auth_fuzz settings_file_fuzz)
BUILD=build-fuzz
SECONDS_PER_TARGET=600
RUNS=-1
BUILD_ONLY=0
TARGETS=()

usage() {
  cat <<EOF
usage: scripts/fuzz.sh [--seconds N] [--runs N] [--build-only] [TARGET...]

Builds the fuzz targets of tests/fuzz in $BUILD/ (clang++-14, -fsanitize=fuzzer,address,undefined;
configured once, then ninja) and runs each TARGET (default: all) in turn on a fresh copy of
its seed corpus tests/fuzz/corpus/TARGET/ (copied to $BUILD/corpus/TARGET/, so the repository's
corpus never grows), with its dictionary tests/fuzz/TARGET.dict when there is one.

  --seconds N   stop each target after N seconds (default $SECONDS_PER_TARGET)
  --runs N      stop each target after N executions (default: no limit); with --seconds,
                whichever comes first
  --build-only  build the targets and stop
  -h, --help    this message

Each run uses -rss_limit_mb=2048 -timeout=10 -max_len=8192 and leak detection. One line per
target: executions, executions per second, seconds, final corpus size (files) and the result.
Exits 1 when any target finds a crash, leak, timeout, out-of-memory or sanitizer report; the
input that did it is kept in $BUILD/artifacts/ and the log in $BUILD/logs/TARGET.log.
Reproduce with: $BUILD/bin/TARGET $BUILD/artifacts/FILE

targets: ${ALL_TARGETS[*]}
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_TARGET="${2:?--seconds needs a value}"; shift 2 ;;
    --seconds=*) SECONDS_PER_TARGET="${1#*=}"; shift ;;
    --runs) RUNS="${2:?--runs needs a value}"; shift 2 ;;
    --runs=*) RUNS="${1#*=}"; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *)
      known=0
      for t in "${ALL_TARGETS[@]}"; do [ "$t" = "$1" ] && known=1; done
      if [ "$known" -eq 0 ]; then
        echo "fuzz.sh: unknown target $1 (targets: ${ALL_TARGETS[*]})" >&2
        exit 2
      fi
      TARGETS+=("$1"); shift ;;
  esac
done
[ "${#TARGETS[@]}" -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")
for n in "$SECONDS_PER_TARGET" "${RUNS#-}"; do
  case "$n" in ''|*[!0-9]*) echo "fuzz.sh: --seconds and --runs take integers" >&2; exit 2 ;; esac
done

# --- build ---
CXX_COMPILER="$(command -v clang++-14 || command -v clang++ || true)"
if [ -z "$CXX_COMPILER" ]; then
  echo "fuzz.sh: clang++-14 not found (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S tests/fuzz -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_COMPILER"
fi
ninja -C "$BUILD" -j"$(nproc)" "${TARGETS[@]}"
[ "$BUILD_ONLY" -eq 1 ] && exit 0

# --- run ---
SYMBOLIZER="$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer ||
  ls /usr/lib/llvm-14/bin/llvm-symbolizer 2>/dev/null || true)"
if [ -n "$SYMBOLIZER" ]; then export ASAN_SYMBOLIZER_PATH="$SYMBOLIZER"; fi
export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
mkdir -p "$BUILD/artifacts" "$BUILD/logs" "$BUILD/corpus"

failed=()
for t in "${TARGETS[@]}"; do
  corpus="$BUILD/corpus/$t"
  log="$BUILD/logs/$t.log"
  rm -rf "$corpus"
  mkdir -p "$corpus"
  cp tests/fuzz/corpus/"$t"/* "$corpus"/
  args=(-max_total_time="$SECONDS_PER_TARGET" -runs="$RUNS" -rss_limit_mb=2048 -timeout=10
    -max_len=8192 -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-")
  if [ -f "tests/fuzz/$t.dict" ]; then args+=(-dict="tests/fuzz/$t.dict"); fi
  start=$(date +%s)
  rc=0
  "$BUILD/bin/$t" "${args[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  elapsed=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  files=$(find "$corpus" -type f | wc -l)
  result=ok
  if [ "$rc" -ne 0 ]; then
    kind=crash
    if grep -q "ERROR: LeakSanitizer" "$log"; then kind=leak
    elif grep -q "ERROR: AddressSanitizer" "$log"; then kind=asan
    elif grep -q "runtime error:" "$log"; then kind=ubsan
    elif grep -q "FUZZ_CHECK failed" "$log"; then kind=invariant
    elif grep -q "ERROR: libFuzzer: timeout" "$log"; then kind=timeout
    elif grep -q "ERROR: libFuzzer: out-of-memory" "$log"; then kind=oom
    fi
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    result="FAILED ($kind, exit $rc) input: ${artifact:-none} log: $log"
    failed+=("$t")
  fi
  printf 'fuzz: %-24s execs %-10s exec/s %-7s seconds %-5s corpus %-6s %s\n' \
    "$t" "${execs:-?}" "${rate:-?}" "$elapsed" "$files" "$result"
  if [ "$rc" -ne 0 ]; then
    grep -E "ERROR:|runtime error:|FUZZ_CHECK failed|SUMMARY:" "$log" | head -5 | sed 's/^/  /'
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $BUILD/artifacts/, logs in $BUILD/logs/)"
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets ok"
