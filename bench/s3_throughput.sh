#!/usr/bin/env bash
# Upload and download throughput of `signround-worker cp` against the loopback
# S3 server (Swift + s3api, tests/s3/swift_server.sh), next to the server's own
# capacity: a raw `curl` PUT / GET of the same object (one stream, its SHA-256
# computed beforehand and not timed) as the reference. Prints MiB/s and the ratios (medians of RUNS runs).
#
#   bench/s3_throughput.sh            (SIZE_MIB=512 RUNS=3 by default)
set -euo pipefail
BIN=${BIN:-build/bin/signround-worker}
SIZE_MIB=${SIZE_MIB:-512}
RUNS=${RUNS:-3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/signround-bench-s3-XXXXXX")
trap 'tests/s3/swift_server.sh stop "$WORK/server" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

mkdir -p "$WORK/server"
line=$(tests/s3/swift_server.sh start "$WORK/server" | tail -1)
endpoint=$(sed -n 's/.*endpoint=\([^ ]*\).*/\1/p' <<<"$line")
export AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=$endpoint
# The access key holds a ':', so it goes URL-encoded into the URL (curl's --user
# splits at the first colon); curl does not send x-amz-content-sha256, s3api needs it.
authed=${endpoint/http:\/\//http://test%3Atester:testing@}
curl_s3() {  # curl_s3 PAYLOAD_SHA256 ARGS...
  local sha=$1
  shift
  curl -sS --fail --aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: $sha" "$@"
}
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
curl_s3 "$empty" -X PUT "$authed/bench" -o /dev/null
head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/object"
object_sha=$(sha256sum "$WORK/object" | cut -d' ' -f1)

seconds() { python3 -c 'import sys,time; print(time.time())'; }
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
time_it() {  # prints the seconds "$@" took
  local t0 t1
  t0=$(seconds)
  "$@" >/dev/null 2>&1
  t1=$(seconds)
  python3 -c "print($t1 - $t0)"
}

declare -a up down curl_up curl_down
for ((i = 0; i < RUNS; i++)); do
  up+=("$(time_it "$BIN" cp "$WORK/object" "s3://bench/cp/object")")
  rm -f "$WORK/back"
  down+=("$(time_it "$BIN" cp "s3://bench/cp/object" "$WORK/back")")
  cmp -s "$WORK/object" "$WORK/back" || { echo "download differs" >&2; exit 1; }
  curl_up+=("$(time_it curl_s3 "$object_sha" -T "$WORK/object" "$authed/bench/curl/object")")
  curl_down+=("$(time_it curl_s3 "$empty" -o "$WORK/back" "$authed/bench/curl/object")")
done
python3 - "$SIZE_MIB" "$(median "${up[@]}")" "$(median "${down[@]}")" \
  "$(median "${curl_up[@]}")" "$(median "${curl_down[@]}")" <<'PY'
import sys
mib = float(sys.argv[1])
up, down, cup, cdown = (mib / float(x) for x in sys.argv[2:6])
print(f"object: {mib:.0f} MiB, loopback Swift s3api, median of runs")
print(f"upload:   signround cp {up:7.1f} MiB/s   raw curl PUT {cup:7.1f} MiB/s   ratio {up / cup:.2f}")
print(f"download: signround cp {down:7.1f} MiB/s   raw curl GET {cdown:7.1f} MiB/s   ratio {down / cdown:.2f}")
PY
