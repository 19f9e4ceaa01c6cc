"""Each training stage of the paper's methods at one model size, eager, compiled (torch.compile, no CUDA graphs) and
compiled with CUDA graphs (what `train.compile=true` trains with on CUDA), built as `cpep-bench perf` builds them:
milliseconds per step and windows/s after the compiled step has been compiled, recorded and replayed. One JSON line
per (stage, mode) on stdout.

    python scripts/compile_speedup.py [--size paper-base] [--steps 50] [--runs-dir DIR]      (on a CUDA machine)
"""

from __future__ import annotations

import argparse
import json

import torch

from bench import plugins
from bench.perf import steps, timing
from bench.run.store import Store
from cpep import config

WARMUP = 5
MODES = ("eager", "compiled", "graphs")


def compiled_without_graphs(model, device):
    model.compile(mode="default")
    return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(steps.PAPER), default="paper-base")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--runs-dir", default="cpep-runs", help="where the synthetic data is (or is made)")
    p.add_argument("--set", action="append", default=[], help="a configuration key=value (e.g. of the data)")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = plugins.resolve(dict(config.parse_assignment(s) for s in a.set), steps.PAPER[a.size])
    data = plugins.get("dataset", "synthetic").open(cfg, Store(a.runs_dir))
    timed, _ = steps.plan(steps.default_methods(), [steps.Size(a.size, cfg)], torch.device("cpu"))
    real = steps.compile_forward
    for t in timed:
        rates = {}
        for mode in MODES if device.type == "cuda" else ("eager",):
            steps.compile_forward = compiled_without_graphs if mode == "compiled" else real
            step, n = steps.build(steps.Timed(t.kind, t.what, t.method, t.step, t.size, t.build, mode != "eager"),
                                  data, device)
            for _ in range(WARMUP):
                step()
            rates[mode] = a.steps * n / timing.seconds(lambda: [step() for _ in range(a.steps)], device)
            print(json.dumps({"stage": t.kind, "size": a.size, "mode": mode, "batch": n, "device": str(device),
                              "ms_per_step": 1e3 * n / rates[mode], "windows_per_s": rates[mode],
                              "vs_eager": rates[mode] / rates["eager"]}), flush=True)
        steps.compile_forward = real


if __name__ == "__main__":
    main()
