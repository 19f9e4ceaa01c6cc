"""Everything `cpep-bench perf` measures, in one process and in order: the roofline first, since the steps are
reported as a fraction of it."""

from __future__ import annotations

import dataclasses
import platform

import torch

from bench.perf import contention, roofline, steps, timing, zero_shot
from bench.perf import data as data_paths
from bench.run.provenance import precision
from cpep.nn.train import Batches

# Per device: the roofline's matrix size and how long to time each row.
ROOFLINE_N = {"cpu": 2048, "cuda": 8192}
PLANS = {"cpu": timing.Plan(repeats=5, repeat_s=0.3, row_s=6.0),
         "cuda": timing.Plan(repeats=5, repeat_s=0.2, row_s=3.0)}
QUICK_PLAN = timing.Plan(repeats=1, repeat_s=0.0, row_s=0.0)
QUICK_ROOFLINE_N, QUICK_BATCH, QUICK_ZERO_SHOT = 256, 16, (256, 64)


def run(cfg: dict, models: list[steps.Model], data, device: torch.device, repeats: int, quick: bool,
        progress=lambda row: None) -> dict:
    """Rows of every measurement (the steps at each of `models`), and what they were measured on; `progress(row)`
    is called as each step row is measured."""
    plan = QUICK_PLAN if quick else dataclasses.replace(PLANS[device.type], repeats=repeats)
    rows = [roofline.measure(QUICK_ROOFLINE_N if quick else ROOFLINE_N[device.type], device, plan)]
    peak = rows[0]["rate"] * 1e12

    windows = data.selection("pretrain")
    size = min(QUICK_BATCH if quick else cfg["align"]["batch_size"], len(windows))
    windows = windows.head(size)
    batch = next(Batches(windows, size, device, seed=0, in_memory_bytes=float("inf")).epoch(0))
    flops = {}  # (step kind, model): FLOPs of one step, which a compiled step shares with its eager twin
    for model in models:
        for step in steps.steps_for(device):
            if model.role in step.roles:
                eager = flops.get((step.kind.removesuffix("_compiled"), model.role))
                rows.append(steps.measure(step, model, data, batch, device, plan, peak, eager))
                flops[step.kind, model.role] = rows[-1]["gflop"] * 1e9
                progress(rows[-1])

    rows += data_paths.measure(windows, device, plan)
    rows.append(zero_shot.measure(cfg["encoder"]["width"], cfg["zero_shot"]["k"], device, plan,
                                  *(QUICK_ZERO_SHOT if quick else zero_shot.SIZE), peak))
    what = f"align step ({cfg['align']['objective']})"
    busy_rows, slowdown = contention.measure(steps.align_step(cfg, data, batch, device), size, what,
                                             steps.encoder_size(cfg), device, plan)
    rows += busy_rows
    return {"device": str(device), "device_name": device_name(device), "precision": precision(device),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "quick": quick,
            "batch": size, "slowdown_beside_busy_process": slowdown, "rows": rows}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()
