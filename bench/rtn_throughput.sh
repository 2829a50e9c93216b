#!/usr/bin/env bash
# Model-free RTN throughput: writes a Llama-7B-shaped bf16 checkpoint (hidden 4096,
# intermediate 11008, 32 heads, vocab 32000; LAYERS blocks, 16 by default = 7.0 GB),
# times reading its safetensors files from a cold and a warm page cache, then quantizes
# it with --iters 0 and no calibration data (round to nearest from the weights alone)
# into gguf:q4_k_m and into auto_round W4G128 sym, each from a cold page cache and then
# again with the checkpoint cached ("warm"), and prints per run:
#   wall s    the worker process from exec to exit (startup included)
#   GB/s      checkpoint bytes / wall seconds
#   peak GiB  report.json peak_rss_bytes
#   user/sys  CPU seconds of the worker
#   round s   the layers' rounding seconds (report "blocks"), which overlap the writing
#   start s   exec -> the "start" event (loading LibTorch, opening the checkpoint)
#   tail s    the last export event -> exit (report.json, teardown)
# When the page cache can be dropped (root), it is dropped before the cold read and the
# cold runs; otherwise the cold read uses O_DIRECT and every run reads whatever the cache
# holds ("cache: warm" in the header).
#
#   bench/rtn_throughput.sh [WORK_DIR]   (env LAYERS=16; needs ~1.5x the checkpoint free:
#                                         ~11 GB at 16 layers, checkpoint and output)
set -euo pipefail
BIN=${BIN:-build/bin/signround-worker}
LAYERS=${LAYERS:-16}
HIDDEN=4096 INTER=11008 VOCAB=32000
WORK=${1:-${TMPDIR:-/tmp}}/signround-bench-rtn-$$
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

# bf16 bytes: per block 4 h*h attention + 3 h*i MLP weights (+ 2 norms), plus embedding and lm_head.
ckpt_bytes=$(( 2 * (LAYERS * (4 * HIDDEN * HIDDEN + 3 * HIDDEN * INTER + 2 * HIDDEN) + 2 * VOCAB * HIDDEN) ))
need_kb=$(( 3 * ckpt_bytes / 2 / 1024 ))
avail_kb=$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')
if (( avail_kb < need_kb )); then
  echo "rtn_throughput: $WORK has $(( avail_kb >> 20 )) GiB free, needs ~$(( need_kb >> 20 )) GiB" \
       "for LAYERS=$LAYERS (try fewer, e.g. LAYERS=8)" >&2
  exit 1
fi

"$BIN" make-test-model --out "$WORK/model" --hidden "$HIDDEN" --intermediate "$INTER" \
  --layers "$LAYERS" --heads 32 --kv-heads 32 --vocab "$VOCAB" --dtype bf16 --shards 2 >/dev/null
files=("$WORK"/model/*.safetensors)

# Drops the page cache when allowed; says whether it did.
can_drop=no
drop_cache() {
  sync
  if echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then can_drop=yes; else can_drop=no; fi
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# Cold read: plain cat after dropping the cache, else O_DIRECT reads (bypass the cache).
drop_cache
t0=$(now)
if [[ $can_drop == yes ]]; then
  cat "${files[@]}" >/dev/null
else
  for f in "${files[@]}"; do dd if="$f" of=/dev/null bs=16M iflag=direct status=none; done
fi
cold_s=$(since "$t0")
cat "${files[@]}" >/dev/null  # make sure everything is cached, then time a warm read
t0=$(now)
cat "${files[@]}" >/dev/null
warm_s=$(since "$t0")
cache=warm
[[ $can_drop == yes ]] && cache=cold

# One quantize run: $1 = a label, the rest = format flags. Appends a JSON row to rows.jsonl.
run() {
  local label=$1 cold=$2
  shift 2
  local out="$WORK/out"
  rm -rf "$out"
  [[ $cold == cold && $can_drop == yes ]] && drop_cache
  python3 - "$label" "$out" "$WORK/rows.jsonl" "$BIN" quantize --model "$WORK/model" --out "$out" \
    --iters 0 --progress json "$@" <<'PY'
import json, os, resource, subprocess, sys, time
label, out, rows, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
t0 = time.monotonic()
events = []  # (seconds since start, event name)
log = open(out + ".log", "w+")  # the worker's stderr (warnings, the final line); shown on failure
proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
for line in proc.stdout:
    try:
        events.append((time.monotonic() - t0, json.loads(line)["event"]))
    except (ValueError, KeyError):
        pass
if proc.wait() != 0:
    log.seek(0)
    sys.stderr.write(log.read())
    sys.exit(f"rtn_throughput: {label}: the worker failed ({proc.returncode})")
wall = time.monotonic() - t0
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
report = json.load(open(os.path.join(out, "report.json")))
last = lambda name: max(t for t, e in events if e == name)
start, export_end = last("start"), last("export")
round_s = sum(b["seconds"] for b in report["blocks"])
with open(rows, "a") as f:
    f.write(json.dumps({
        "format": label, "wall": wall, "peak_rss": report["peak_rss_bytes"],
        "user": usage.ru_utime, "sys": usage.ru_stime, "round": round_s, "start": start,
        "tail": wall - export_end}) + "\n")
PY
  rm -rf "$out" "$out.log"
}

# GGUF wants tokenizer files for its vocabulary; the random checkpoint has none.
# Each format from a cold cache (when it can be dropped), then again with the checkpoint cached.
for cache_state in cold warm; do
  run "gguf:q4_k_m $cache_state" $cache_state --format gguf:q4_k_m --allow-gguf-without-vocab
  run "auto_round:w4g128 $cache_state" $cache_state --format auto_round --bits 4 --group-size 128 \
    --sym
done

python3 - "$WORK/rows.jsonl" "${files[@]}" "$LAYERS" "$cold_s" "$warm_s" "$cache" <<'PY'
import json, os, sys
rows_path, *files, layers, cold, warm, cache = sys.argv[1:]
size = sum(os.path.getsize(f) for f in files)
gb, gib = 1e9, 1 << 30
cold, warm = float(cold), float(warm)
print(f"checkpoint: {size / gb:.2f} GB bf16, {layers} blocks, {os.cpu_count()} CPUs, cache: {cache}")
print(f"read cold:  {cold:6.2f} s  {size / gb / cold:6.2f} GB/s")
print(f"read warm:  {warm:6.2f} s  {size / gb / warm:6.2f} GB/s")
print("format                    wall s   GB/s  peak GiB  user s   sys s  round s  start s  tail s")
for line in open(rows_path):
    r = json.loads(line)
    print(f"{r['format']:<23} {r['wall']:8.1f} {size / gb / r['wall']:6.3f} "
          f"{r['peak_rss'] / gib:9.2f} {r['user']:7.1f} {r['sys']:7.1f} {r['round']:8.1f} "
          f"{r['start']:8.1f} {r['tail']:7.1f}")
PY
