#!/usr/bin/env python3
"""The side-by-side table of bench/gpu/run.sh from its JSON files, in the README's form:
seconds per iteration, TFLOP/s, ratio to the floor, peak memory and final block loss per side,
and our speed-up over each reference run.

Usage: table.py --peak-tflops P signround.json reference.json [reference-compile.json ...]
"""

import argparse
import json

p = argparse.ArgumentParser()
p.add_argument("--peak-tflops", type=float, required=True)
p.add_argument("files", nargs="+")
args = p.parse_args()

runs = []
for path in args.files:
    try:
        with open(path) as f:
            runs.append(json.load(f))
    except (OSError, ValueError) as e:
        print(f"(no figures from {path}: {e})")
ours = next((r for r in runs if r["side"] == "signround"), None)
if ours is None:
    raise SystemExit("no signround figures")
flops = ours["flops_per_iteration"]  # the same block, tokens and sequence length on every side
floor = flops / (args.peak_tflops * 1e12)
print(f"floor: {flops / 1e12:.1f} TFLOP per iteration at {args.peak_tflops:.0f} TFLOP/s "
      f"(measured) = {floor:.4f} s")
print("| side | s / iteration | TFLOP/s | x floor | peak memory GiB | loss iter 0 | best loss | "
      "ours faster by |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for r in runs:
    s = r["seconds_per_iteration"]
    peak = r.get("peak_device_bytes")
    memory = f"{peak / 2**30:.1f}" if isinstance(peak, (int, float)) and peak >= 0 else "-"
    speedup = "-" if r is ours else f"{s / ours['seconds_per_iteration']:.2f}x"
    loss0 = r.get("loss_iter0")
    best = r.get("loss_best")
    print(f"| {r['side']} | {s:.4f} | {flops / s / 1e12:.0f} | {s / floor:.2f} | {memory} | "
          f"{loss0 if loss0 is None else f'{loss0:.6g}'} | "
          f"{best if best is None else f'{best:.6g}'} | {speedup} |")
