"""Throughput of the hot paths, measured side by side in one process and reported as ratios.

The training steps (MAE, alignment) and the two data paths (windows streamed from HDF5, windows sliced from
memory) are each timed over several repeats; the median is kept, because shared machines are noisy. The ratio of
a data path to the alignment step says how many loader processes it takes for that path to keep up.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from bench import plugins
from cpep import pipeline
from cpep.data import Emg2PoseData
from cpep.train import Batches, autocast, pick_device


def _median_rate(work: Callable[[], int], repeats: int, device: torch.device) -> float:
    """Median items per second of `work()` (which returns how many items it processed)."""
    work()  # warm-up: allocator, kernels, file handles
    rates = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        n = work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(n / (time.perf_counter() - began))
    return statistics.median(rates)


def _train_step(model: torch.nn.Module, loss_fn: Callable, batch: dict, device: torch.device, steps: int):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def work() -> int:
        for _ in range(steps):
            with autocast(device):
                loss = loss_fn(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return steps * len(batch["emg"])
    return work


def measure(cfg: dict, data: Emg2PoseData, repeats: int = 5, steps: int = 3) -> list[dict]:
    device = pick_device(cfg["train"]["device"])
    windows = data.selection("pretrain")
    size = min(cfg["align"]["batch_size"], len(windows))
    idx = range(size)

    def streamed() -> int:
        for i in idx:
            windows[i]
        return size

    memory = Batches(windows.head(size), size, device, seed=0, in_memory_bytes=float("inf"))

    def in_memory() -> int:
        next(memory.epoch(0))
        return size

    batch = next(memory.epoch(0))
    mae = pipeline.make_mae("emg", cfg, data).to(device)
    objective = cfg["align"]["objective"]
    aligned = pipeline.Aligned(cfg, data, plugins.get("objective", objective)).to(device)
    aligned.pose.requires_grad_(False)
    rows = [
        (f"align step ({objective}, pose encoder frozen)",
         _train_step(aligned, lambda b: aligned.loss(b["emg"], b["pose"]), batch, device, steps)),
        ("EMG-MAE step", _train_step(mae, lambda b: mae(b["emg"])[0], batch, device, steps)),
        ("windows streamed from HDF5 (one process)", streamed),
        ("windows sliced from memory", in_memory),
    ]
    results = [{"what": name, "windows_per_s": _median_rate(work, repeats, device)} for name, work in rows]
    reference = results[0]["windows_per_s"]
    for r in results:
        r["ratio_to_align_step"] = r["windows_per_s"] / reference
    return results
