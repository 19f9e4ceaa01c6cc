"""Everything `cpep-bench perf` measures, in one process and in order: the roofline first, since the steps are
reported as a fraction of it."""

from __future__ import annotations

import dataclasses
import platform

import torch

from bench.perf import contention, roofline, steps, timing, zero_shot
from bench.perf import data as data_paths
from bench.run.provenance import precision

# Per device: the roofline's matrix size and how long to time each row.
ROOFLINE_N = {"cpu": 2048, "cuda": 8192}
PLANS = {"cpu": timing.Plan(repeats=5, repeat_s=0.3, row_s=6.0),
         "cuda": timing.Plan(repeats=5, repeat_s=0.2, row_s=3.0)}
QUICK_PLAN = timing.Plan(repeats=1, repeat_s=0.0, row_s=0.0, warmup=False)
QUICK_ROOFLINE_N, QUICK_BATCH, QUICK_ZERO_SHOT = 256, 16, (256, 64)


def run(cfg: dict, timed: list[steps.Timed], data, device: torch.device, repeats: int, quick: bool,
        progress=lambda row: None) -> dict:
    """Rows of every measurement (the `timed` steps, the data paths, zero-shot, contention), and what they were
    measured on; `progress(row)` is called as each step row is measured."""
    plan = QUICK_PLAN if quick else dataclasses.replace(PLANS[device.type], repeats=repeats)
    rows = [roofline.measure(QUICK_ROOFLINE_N if quick else ROOFLINE_N[device.type], device, plan)]
    peak = rows[0]["rate"] * 1e12

    flops = {}  # (step kind, model): FLOPs of one step, which a compiled step shares with its eager twin
    for t in timed:
        eager = flops.get((t.kind.removesuffix("_compiled"), t.size.role))
        rows.append(steps.measure(t, data, device, plan, peak, eager))
        flops[t.kind, t.size.role] = rows[-1]["gflop"] * 1e9
        progress(rows[-1])

    windows = data.selection("pretrain")
    windows = windows.head(min(QUICK_BATCH if quick else cfg["align"]["batch_size"], len(windows)))
    rows += data_paths.measure(windows, device, plan)
    rows.append(zero_shot.measure(cfg["encoder"]["width"], cfg["zero_shot"]["k"], device, plan,
                                  *(QUICK_ZERO_SHOT if quick else zero_shot.SIZE), peak))
    busy = contention_step(timed)
    train, n = steps.build(busy, data, device)
    busy_rows, slowdown = contention.measure(train, n, busy.kind, steps.model_size(busy.step, busy.size.cfg),
                                             device, plan)
    rows += busy_rows
    return {"device": str(device), "device_name": device_name(device), "precision": precision(device),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "quick": quick,
            "slowdown_beside_busy_process": slowdown, "contention_step": busy.kind, "rows": rows}


def contention_step(timed: list[steps.Timed]) -> steps.Timed:
    """The step timed beside a busy process: the default model's alignment where it is timed, else its first."""
    default = [t for t in timed if t.size.role == "default" and not t.compiled]
    return next((t for t in default if t.kind == "align"), default[0])


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()
