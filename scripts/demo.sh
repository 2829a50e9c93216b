#!/usr/bin/env bash
# Installs, builds and runs the main job on embedded defaults: writes a small
# random-initialised Llama checkpoint and calibration tokens, then quantizes it
# with SignRound (W4 G128) and prints the report.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
DEMO=build/demo
rm -rf "$DEMO" && mkdir -p "$DEMO"
build/bin/signround-worker make-test-model --out "$DEMO/model"
python3 - "$DEMO" <<'PY'
import json, random, sys
random.seed(0)
for name, rows in (("calib.jsonl", 32), ("eval.jsonl", 8)):
    with open(f"{sys.argv[1]}/{name}", "w") as f:
        for _ in range(rows):
            f.write(json.dumps({"input_ids": [random.randrange(1024) for _ in range(128)]}) + "\n")
PY
build/bin/signround-worker inspect --model "$DEMO/model"
build/bin/signround-worker quantize --model "$DEMO/model" --calib "$DEMO/calib.jsonl" \
  --eval "$DEMO/eval.jsonl" --out "$DEMO/quantized" --bits 4 --group-size 128 \
  --iters 50 --nsamples 32 --seqlen 128 --format auto_round,auto_gptq
# The packed checkpoint reads back to the perplexity the report gives.
build/bin/signround-worker eval --model "$DEMO/quantized/auto_round" --data "$DEMO/eval.jsonl"
python3 - "$DEMO/quantized/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"report: {sys.argv[1]}")
for b in r["blocks"]:
    print(f"  block {b['index']}: {b['layers_quantized']} layers, loss {b['loss_iter0']:.3g} (RTN)"
          f" -> {b['loss_best']:.3g} at iteration {b['best_iter']}, {b['seconds']:.1f} s")
p = r["perplexity"]
print(f"  perplexity on random tokens: {p['original']:.2f} -> {p['quantized']:.2f}")
print(f"  {r['seconds_total']:.1f} s, peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB")
PY
