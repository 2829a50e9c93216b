#!/usr/bin/env python3
"""The GPU's dense bf16 matrix rate, measured: the mean of 10 timed 8192^3 products on
random data after 3 warm-ups (CUDA events). Prints TFLOP/s; bench/gpu/run.sh takes it as the
ceiling the tuning iteration's floor is computed against."""

import torch

n = 8192
a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
for _ in range(3):
    a @ b
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
for _ in range(10):
    a @ b
end.record()
torch.cuda.synchronize()
seconds = start.elapsed_time(end) / 1000 / 10
print(f"{2 * n ** 3 / seconds / 1e12:.0f}")
