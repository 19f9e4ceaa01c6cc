"""Eager against compiled (torch.compile, mode "reduce-overhead": CUDA graphs) training steps, as `cpep-bench perf`
builds them, at one model size: milliseconds per step and windows/s after the compiled step has been compiled,
recorded and replayed.

    python scripts/compile_speedup.py [--size paper-base] [--steps 50]      (on a CUDA machine)
"""

from __future__ import annotations

import argparse

import torch

from bench import plugins
from bench.perf import steps, timing
from bench.run.store import Store
from cpep.nn.train import Batches

WARMUP = 5


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(steps.PAPER), default="paper-base")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--runs-dir", default="cpep-runs", help="where the synthetic data is (or is made)")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = plugins.resolve(steps.PAPER[a.size])
    data = plugins.get("dataset", "synthetic").open(cfg, Store(a.runs_dir))
    windows = data.selection("pretrain").head(cfg["align"]["batch_size"])
    batch = next(Batches(windows, len(windows), device, seed=0, in_memory_bytes=float("inf")).epoch(0))
    for name, build in (("EMG-MAE", steps._mae), ("align", steps._align)):
        rates = []
        for compiled in (False, True):
            step = steps.trainer(*build(cfg, data, device, batch), batch, device, compiled)
            for _ in range(WARMUP):
                step()
            rates.append(a.steps * len(windows) / timing.seconds(lambda: [step() for _ in range(a.steps)], device))
            print(f"{name} {'compiled + CUDA graphs' if compiled else 'eager'} ({a.size}, batch {len(windows)}, "
                  f"{device}): {len(windows) / rates[-1] * 1e3:.2f} ms/step, {rates[-1]:,.0f} windows/s", flush=True)
        print(f"{name}: compiled / eager = {rates[1] / rates[0]:.2f}x")


if __name__ == "__main__":
    main()
