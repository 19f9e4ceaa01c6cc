"""The step rate with one CPU-bound process beside it: what a shared machine (a busy data loader, another job)
costs a training step. The process is started and stopped here."""

from __future__ import annotations

import multiprocessing
from typing import Callable

import torch

from bench.perf import table, timing

START_TIMEOUT_S = 120.0


def _spin(ready, stop) -> None:
    """Pure-Python busy loop (holds one core) until `stop` is set."""
    ready.set()
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x ^= i


class BusyProcess:
    """One CPU-bound process for the duration of a `with` block."""

    def __enter__(self):
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's threads
        self.ready, self.stop = ctx.Event(), ctx.Event()
        self.process = ctx.Process(target=_spin, args=(self.ready, self.stop), daemon=True)
        self.process.start()
        if not self.ready.wait(START_TIMEOUT_S):
            self._end()
            raise RuntimeError(f"the CPU-bound process did not start within {START_TIMEOUT_S:.0f} s")
        return self

    def _end(self) -> None:
        self.stop.set()
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)

    def __exit__(self, *exc):
        self._end()
        return False


def measure(step: Callable[[], None], batch_size: int, what: str, size: str, device: torch.device,
            plan: timing.Plan) -> tuple[list[dict], float]:
    """Rows of the step's rate as found and beside a busy process, and the slowdown (idle rate / busy rate)."""
    idle = timing.median_rate(step, batch_size, device, plan)
    with BusyProcess():
        busy = timing.median_rate(step, batch_size, device, plan)
    common = dict(size=size, model="default", batch=batch_size)
    rows = [table.row("contention", f"{what}, as found", idle.rate, "windows/s", units_per_repeat=idle.units,
                      repeats=idle.repeats, vs_reference=1.0, **common),
            table.row("contention", f"{what} + busy process", busy.rate, "windows/s",
                      units_per_repeat=busy.units, repeats=busy.repeats, vs_reference=busy.rate / idle.rate,
                      **common)]
    return rows, idle.rate / busy.rate
