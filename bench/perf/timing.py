"""How every row is timed: an untimed warm-up, then repeats of a few units of work, and the median rate.

The number of units per repeat and of repeats follows from how long the warm-up took, so a fast path is timed
over many units and a slow one (a large model on a CPU) over as few as one, within a per-row time budget.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils import flop_counter

# A first call longer than this (a large model on a CPU) is warm-up enough: no second untimed call.
SLOW_UNIT_S = 10.0


@dataclass(frozen=True)
class Plan:
    repeats: int     # at most this many timed repeats; the median is kept
    repeat_s: float  # aim for repeats this long (units per repeat = repeat_s / one unit's time, at least 1)
    row_s: float     # fewer repeats when they would take longer than this together
    warmup: bool = True  # a second untimed call after a fast first one (--quick makes none)


@dataclass(frozen=True)
class Timing:
    rate: float      # items per second, median over repeats
    units: int       # units of work per repeat
    repeats: int


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(work: Callable[[], object], device: torch.device) -> float:
    sync(device)
    began = time.perf_counter()
    work()
    sync(device)
    return time.perf_counter() - began


def median_rate(unit: Callable[[], object], items: int, device: torch.device, plan: Plan,
                first_s: float | None = None) -> Timing:
    """Median items/s of `unit()`, which processes `items` items (a step of a batch, a batch read, a matmul).

    `first_s` is how long an untimed first call (the one whose FLOPs were counted) took; a second warm-up call is
    made unless that one was already slow (allocator, kernels, file handles: first-call costs are excluded).
    """
    if first_s is None or (plan.warmup and first_s < SLOW_UNIT_S):
        first_s = seconds(unit, device)
    units = max(1, round(plan.repeat_s / max(first_s, 1e-9)))
    repeats = max(1, min(plan.repeats, int(plan.row_s / max(units * first_s, 1e-9))))

    def repeat():
        for _ in range(units):
            unit()
    rates = [units * items / seconds(repeat, device) for _ in range(repeats)]
    return Timing(statistics.median(rates), units, repeats)


def _attention(query, key, value, *args, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)


def _attention_backward(grad_out, query, key, value, *args, **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


# torch's counter knows the CUDA attention kernels but not the CPU one; count it by the same formula.
_CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention,
                  torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _attention_backward}


def counted(work: Callable[[], object], device: torch.device) -> tuple[int, float]:
    """(FLOPs, seconds) of one call of `work` under torch's FlopCounterMode (matmuls, convolutions, attention)."""
    with flop_counter.FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION) as counter:
        took = seconds(work, device)
    return counter.get_total_flops(), took


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # macOS reports bytes, Linux kilobytes


class PeakMemory:
    """Peak memory of what runs inside: CUDA's peak allocation, or on a CPU the increase of the process's peak
    resident set size (0 when it needs no more than something earlier in the process did)."""

    def __init__(self, device: torch.device):
        self.device, self.bytes = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._before = _max_rss_bytes()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self.bytes = _max_rss_bytes() - self._before
        return False
