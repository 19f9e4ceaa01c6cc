"""The device's own GEMM roofline: one large square matmul in the training precision, timed in the same run
as the steps that are reported as a fraction of it."""

from __future__ import annotations

import torch

from bench.perf import table, timing

SHORT = {torch.float32: "f32", torch.bfloat16: "bf16"}


def dtype_of(device: torch.device) -> torch.dtype:
    """The precision the steps compute in: bf16 under CUDA autocast, float32 on a CPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def measure(n: int, device: torch.device, plan: timing.Plan) -> dict:
    """About 1 s of work on 2 CPU cores at n = 2048 (float32); a GPU needs n = 8192 (bf16) to reach its peak."""
    g = torch.Generator(device=device).manual_seed(0)
    a, b = (torch.randn(n, n, generator=g, device=device, dtype=dtype_of(device)) for _ in range(2))
    flops, first_s = timing.counted(lambda: a @ b, device)
    t = timing.median_rate(lambda: a @ b, 1, device, plan, first_s)
    r = table.row("roofline", "GEMM (roofline)", t.rate * flops / 1e12, "TFLOP/s",
                  size=f"{n}^3 {SHORT[dtype_of(device)]}", units_per_repeat=t.units,
                  repeats=t.repeats, gflop=flops / 1e9, tflop_per_s=t.rate * flops / 1e12, of_roofline=1.0)
    return r
