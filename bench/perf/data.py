"""The data paths a training step can be fed from, each as a fraction of a plain memory copy of the same bytes
(the most any path that copies the windows could do on this machine)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from bench.perf import table, timing
from cpep.data.windows import WindowDataset
from cpep.nn.train import Batches


def _read(windows: WindowDataset, device: torch.device) -> Callable[[], object]:
    """Window by window from the recordings, by the dataset's reader, as one loader process reads them (after the
    first pass, from the page cache)."""
    def read():
        for i in range(len(windows)):
            windows[i]
    return read


def _packed(windows: WindowDataset, device: torch.device) -> Callable[[], object]:
    """A shuffled batch gathered from the memory-mapped window cache (how a selection too large to hold in memory
    is served), moved to the training device; after the first pass, from the page cache."""
    packed = windows.packed()
    order = np.random.default_rng(0).permutation(len(windows))
    return lambda: {k: t.to(device) for k, t in packed.gather(order).items()}


def _memory(windows: WindowDataset, device: torch.device) -> Callable[[], object]:
    """A shuffled batch gathered from the selection held on the training device, as Batches serves it."""
    held = Batches(windows, len(windows), device, seed=0, in_memory_bytes=float("inf"))
    return lambda: next(held.epoch(0))


# Each data path: (what, reader of a batch of windows). A new way of serving windows is one more entry here, and
# its row lands beside these, as a fraction of the same memory copy.
PATHS = (
    ("{reader} read, 1 process", _read),
    ("window cache gather (mmap)", _packed),
    ("slice from memory", _memory),
)


def reader(windows: WindowDataset) -> str:
    """What reads a window from its recording: the dataset's window class, by the format it reads."""
    from cpep.data.ninapro_windows import MatWindows
    return {WindowDataset: "HDF5", MatWindows: "MATLAB .mat"}.get(type(windows), type(windows).__name__)


def window_bytes(windows: WindowDataset) -> int:
    first = windows[0]
    return (first["emg"].numel() + first["pose"].numel()) * 4  # float32, as a training step reads them


def measure(windows: WindowDataset, device: torch.device, plan: timing.Plan) -> list[dict]:
    """Rows for a batch of `len(windows)` windows: the memory copy first, then each path."""
    n, nbytes = len(windows), window_bytes(windows)
    src = np.ones(n * nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    copy = timing.median_rate(lambda: np.copyto(dst, src), n, torch.device("cpu"), plan)
    reference = table.row("data", "memory copy (reference)", copy.rate, "windows/s",
                          size=f"{nbytes * n / 2**20:.1f} MB", batch=n, units_per_repeat=copy.units,
                          repeats=copy.repeats, vs_reference=1.0)
    rows = [reference]
    for what, path in PATHS:
        t = timing.median_rate(path(windows, device), n, device, plan)
        rows.append(table.row("data", what.format(reader=reader(windows)), t.rate, "windows/s", batch=n,
                              units_per_repeat=t.units, repeats=t.repeats, vs_reference=t.rate / copy.rate))
    return rows
