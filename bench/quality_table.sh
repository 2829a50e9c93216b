#!/usr/bin/env bash
# Perplexity and seconds of each quantization method on the shared models: the README's
# method table. Per model and bit width (group GROUP, default 32; sym, calibration 128 x 256 tokens,
# batch 8, seed SEED, default 42), one worker run per method:
#   rtn      --recipe rtn                      round to nearest, full range
#   opt_rtn  --recipe opt_rtn                  the importance-weighted scale search, no tuning
#   v1       --iters ITERS --no-scale-search --no-loss-filter   SignRound as ALGORITHM.md
#            states it (the default recipe turns both on at 2 and 3 bits sym)
#   v2       --iters ITERS --scale-search --loss-filter
#   mixed    --iters ITERS --target-bits BITS.5   (AutoScheme: W2..W8 G32 and W16 at half a
#            bit more than the row's width on average, then v1's tuning)
#   teq      --recipe rtn --teq-iters TEQ_ITERS    (TEQ's scales, then round to nearest)
#   teq_v1   v1's flags --teq-iters TEQ_ITERS   (TEQ's scales, then SignRound v1)
#   teq_v2   --iters ITERS --scale-search --loss-filter --teq-iters TEQ_ITERS
# and prints one markdown row per model and width: fp perplexity, then each method's
# perplexity (seconds of the whole worker run in brackets). The models' own calibration and
# evaluation files are used where ../shared/data has them (stories260k, babyllama-105); the
# zoo models use stories260k's, as ZOO.md's figures do.
#
#   bench/quality_table.sh [SHARED_DIR]   (env MODELS="stories260k qwen3-tiny ...",
#                                          BITS="2 3", METHODS="rtn opt_rtn v1 v2",
#                                          ITERS=200, TEQ_ITERS=100, GROUP=32, SEED=42;
#                                          the worker at BIN)
set -euo pipefail
BIN=${BIN:-build/bin/signround-worker}
SHARED=${1:-../shared}
MODELS=${MODELS:-"stories260k babyllama-105 qwen3-tiny qwen3moe-tiny mixtral-tiny gemma3-tiny phi3-tiny"}
BITS=${BITS:-"2 3"}
METHODS=${METHODS:-"rtn opt_rtn v1 v2"}
ITERS=${ITERS:-200}
TEQ_ITERS=${TEQ_ITERS:-100}
GROUP=${GROUP:-32}
SEED=${SEED:-42}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

method_flags() {
  case $1 in
    rtn) echo "--recipe rtn" ;;
    opt_rtn) echo "--recipe opt_rtn" ;;
    v1) echo "--iters $ITERS --no-scale-search --no-loss-filter" ;;
    v2) echo "--iters $ITERS --scale-search --loss-filter" ;;
    mixed) echo "--iters $ITERS --target-bits $2.5" ;;
    teq) echo "--recipe rtn --teq-iters $TEQ_ITERS" ;;
    teq_v1) echo "--iters $ITERS --no-scale-search --no-loss-filter --teq-iters $TEQ_ITERS" ;;
    teq_v2) echo "--iters $ITERS --scale-search --loss-filter --teq-iters $TEQ_ITERS" ;;
    *) echo "quality_table: unknown method '$1'" >&2; exit 2 ;;
  esac
}

echo "| model | bits | fp | $(sed 's/ / | /g' <<<"$METHODS") |"
echo "|---|---|---|$(for _ in $METHODS; do printf -- '---|'; done)"
for model in $MODELS; do
  data=$model
  [[ -f $SHARED/data/$model-calib-128x256.jsonl ]] || data=stories260k
  for bits in $BITS; do
    row="" fp=""
    for m in $METHODS; do
      out=$WORK/$model-$bits-$m
      t0=$(date +%s.%N)
      # shellcheck disable=SC2046
      "$BIN" quantize --model "$SHARED/models/$model" \
        --calib "$SHARED/data/$data-calib-128x256.jsonl" \
        --eval "$SHARED/data/$data-eval-256.jsonl" --seqlen 256 --nsamples 128 --batch-size 8 \
        --bits "$bits" --group-size "$GROUP" --sym --seed "$SEED" --format fake --out "$out" \
        $(method_flags "$m" "$bits") 2>"$out.log" || { echo "quality_table: $model W$bits $m failed:" >&2; tail -3 "$out.log" >&2; exit 1; }
      s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
      # Perplexities, and for mixed bits the achieved average ("2.47 b").
      read -r fp ppl avg < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); p=r["perplexity"]; a=r.get("auto_scheme"); print("%.4f %.4f %s" % (p["original"], p["quantized"], "%.2f" % a["average_bits"] if a else ""))' "$out/report.json")
      row+=" $ppl (${avg:+$avg b, }$s s) |"
      rm -rf "$out"
    done
    echo "| $model | W${bits}$([[ $GROUP == -1 ]] && echo " per-channel" || echo "G$GROUP") | $fp |$row"
  done
done
