#!/usr/bin/env bash
# Runs the same quantize jobs with two signround-worker binaries and compares
# every artifact byte for byte (report.json without its timings), for checking
# that a refactor leaves results unchanged.
#
#   scripts/compare-artifacts.sh OLD_WORKER NEW_WORKER [MODEL_DIR] [CALIB_JSONL]
#
# Defaults: ../shared's stories260k and its calibration rows. Prints one line a
# job and exits 1 on any difference.
set -euo pipefail
old=$1
new=$2
root=$(cd "$(dirname "$0")/.." && pwd)
model=${3:-$root/../shared/models/stories260k}
calib=${4:-$root/../shared/data/stories260k-calib-128x256.jsonl}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '{"mlp\\\\.down_proj": {"bits": 8}, "self_attn\\\\.o_proj": {"group_size": 64}}' \
  >"$work/layers.json"

common=(--model "$model" --calib "$calib" --model-name m --calib-name c --iters 4
  --nsamples 8 --seqlen 64 --batch-size 4 --threads 1 --progress json)
jobs=(
  "auto_round|--format auto_round,fake --bits 4 --group-size 32 --layer-config $work/layers.json"
  "auto_gptq|--format auto_gptq --bits 2 --group-size 32 --asym"
  "gguf_q4_1|--format gguf:q4_1,fake --bits 4 --group-size 32 --asym"
  "gguf_q4_0|--format gguf:q4_0 --bits 4 --group-size 32"
)

# Every file below $1 with its sha256; report.json without seconds and memory.
digest() {
  (cd "$1" && find . -type f ! -path './.signround-work/*' ! -name report.json -print0 |
    sort -z | xargs -0 sha256sum)
  python3 - "$1/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for key in ("seconds_total", "peak_rss_bytes"):
    r.pop(key, None)
for b in r.get("blocks", []):
    b.pop("seconds", None)
print("report.json", json.dumps(r, sort_keys=True))
PY
}

# The auto_round job again, its settings from a file as the job service writes them.
cat >"$work/settings.json" <<'JSON'
{"version": 1, "recipe": "default", "formats": ["auto_round", "fake"], "bits": 4,
 "group_size": 32, "sym": true, "iters": 4, "lr": 0, "minmax_lr": 0, "nsamples": 8,
 "seqlen": 64, "batch_size": 4, "seed": 42, "packed_dtype": "float16",
 "layer_overrides": [{"pattern": "mlp\\.down_proj", "bits": 8},
                     {"pattern": "self_attn\\.o_proj", "group_size": 64}],
 "allow_split_fused": false, "allow_gguf_without_vocab": false}
JSON

status=0
for job in "${jobs[@]}"; do
  name=${job%%|*}
  read -r -a flags <<<"${job#*|}"
  for side in old new; do
    if ! "${!side}" quantize "${common[@]}" "${flags[@]}" --out "$work/$name-$side" \
      >/dev/null 2>"$work/err"; then
      echo "$name: the $side worker failed:"; tail -3 "$work/err"; exit 1
    fi
  done
  if diff <(digest "$work/$name-old") <(digest "$work/$name-new") >"$work/diff"; then
    echo "$name: identical ($(cd "$work/$name-new" && find . -type f ! -path './.signround-work/*' | wc -l) files)"
  else
    echo "$name: DIFFERENT"; head -20 "$work/diff"; status=1
  fi
done
"$new" quantize --settings "$work/settings.json" --model "$model" --calib "$calib" \
  --model-name m --calib-name c --threads 1 --progress json --out "$work/settings-new" \
  >/dev/null 2>"$work/err" || { echo "settings: the new worker failed:"; tail -3 "$work/err"; exit 1; }
if diff <(digest "$work/auto_round-old") <(digest "$work/settings-new") >"$work/diff"; then
  echo "auto_round from --settings: identical to the flags' run"
else
  echo "auto_round from --settings: DIFFERENT"; head -20 "$work/diff"; status=1
fi
exit $status
