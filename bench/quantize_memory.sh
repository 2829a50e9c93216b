#!/usr/bin/env bash
# Peak RSS of quantizing a checkpoint much larger than one block: writes a
# Llama-7B-shaped bf16 checkpoint of about 6.2 GB (14 blocks of hidden 4096,
# intermediate 11008), quantizes it with --iters 2 on a few short samples, and
# prints the peak RSS next to the checkpoint and block sizes.
#
#   bench/quantize_memory.sh [WORK_DIR]      (needs ~20 GB free in WORK_DIR)
set -euo pipefail
BIN=${BIN:-build/bin/signround-worker}
WORK=${1:-${TMPDIR:-/tmp}}/signround-bench-memory-$$
LAYERS=${LAYERS:-14}
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

"$BIN" make-test-model --out "$WORK/model" --hidden 4096 --intermediate 11008 --layers "$LAYERS" \
  --heads 32 --kv-heads 32 --vocab 32000 --dtype bf16 --shards 2
python3 - "$WORK/calib.jsonl" <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for _ in range(8):
        f.write(json.dumps({"input_ids": [random.randrange(32000) for _ in range(64)]}) + "\n")
PY
"$BIN" quantize --model "$WORK/model" --calib "$WORK/calib.jsonl" --out "$WORK/out" \
  --iters 2 --nsamples 8 --seqlen 64 --batch-size 4 --progress bar
python3 - "$WORK" <<'PY'
import json, os, sys
work = sys.argv[1]
report = json.load(open(os.path.join(work, "out", "report.json")))
model = os.path.join(work, "model")
size = sum(os.path.getsize(os.path.join(model, f)) for f in os.listdir(model) if f.endswith(".safetensors"))
hidden, inter = 4096, 11008
block = 2 * (4 * hidden * hidden + 3 * hidden * inter)  # bf16 bytes of one block's Linears
peak = report["peak_rss_bytes"]
gib = 1 << 30
print(f"checkpoint size:     {size / gib:.2f} GiB ({len(report['blocks'])} blocks)")
print(f"one block (bf16):    {block / gib:.2f} GiB, {4 * block / 2 / gib:.2f} GiB as fp32")
print(f"peak rss:            {peak / gib:.2f} GiB = {peak / size:.2f} x the checkpoint")
print(f"seconds total:       {report['seconds_total']:.0f}")
PY
