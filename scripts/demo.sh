#!/usr/bin/env bash
# Installs, builds and runs the main job on embedded defaults: starts
# signround-server (SQLite job store and an input cache under build/demo/data,
# one cpu slot, outputs on local disk), writes a small random-initialised Llama
# checkpoint and calibration tokens, submits a SignRound W4 G128 job with the
# `signround` CLI, follows it block by block, and shows the finished job with
# its artifacts and the quantized model's perplexity.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
BIN="$PWD/build/bin"
DEMO="$PWD/build/demo"
rm -rf "$DEMO" && mkdir -p "$DEMO"

"$BIN/signround-worker" make-test-model --out "$DEMO/model"
python3 - "$DEMO" <<'PY'
import json, random, sys
random.seed(0)
for name, rows in (("calib.jsonl", 32), ("eval.jsonl", 8)):
    with open(f"{sys.argv[1]}/{name}", "w") as f:
        for _ in range(rows):
            f.write(json.dumps({"input_ids": [random.randrange(1024) for _ in range(128)]}) + "\n")
PY

# The server on loopback, any free ports; it prints one JSON line when ready.
"$BIN/signround-server" --data-dir "$DEMO/data" --listen 127.0.0.1:0 \
  --metrics-listen 127.0.0.1:0 >"$DEMO/server.ready" 2>"$DEMO/server.log" &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  [ -s "$DEMO/server.ready" ] && break
  kill -0 $SERVER_PID 2>/dev/null || { cat "$DEMO/server.log"; exit 1; }
  sleep 0.1
done
ready=$(cat "$DEMO/server.ready")
export SIGNROUND_SERVER=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["grpc"])' "$ready")
METRICS=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["metrics"])' "$ready")
echo "signround-server: gRPC $SIGNROUND_SERVER, metrics http://$METRICS/metrics (log: $DEMO/server.log)"

"$BIN/signround" submit --model "file://$DEMO/model" --calib "file://$DEMO/calib.jsonl" \
  --out "file://$DEMO/quantized" --bits 4 --group-size 128 --iters 50 --nsamples 32 \
  --seqlen 128 --format auto_round,auto_gptq --label demo=true --watch
JOB=$("$BIN/signround" --json list --label demo=true | python3 -c \
  'import json,sys; print(json.loads(sys.stdin.readline())["id"])')
"$BIN/signround" get "$JOB"

# The uploaded packed checkpoint loads back; perplexity before and after.
echo "perplexity on random tokens, original model:"
"$BIN/signround-worker" eval --model "$DEMO/model" --data "$DEMO/eval.jsonl"
echo "perplexity on random tokens, uploaded auto_round checkpoint:"
"$BIN/signround-worker" eval --model "$DEMO/quantized/auto_round" --data "$DEMO/eval.jsonl"
curl -s "http://$METRICS/metrics" | grep -E '^signround_(jobs|job_submissions_total|upload_bytes_total)' || true
