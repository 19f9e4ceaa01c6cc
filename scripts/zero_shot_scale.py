"""Zero-shot at the scale of the real dataset: seconds and peak device memory of cpep.probes's blocked k-nearest
search over random unit embeddings, with exact ties planted (a block of references copied further on).

    python scripts/zero_shot_scale.py [--references 300000] [--queries 40000] [--dim 128] [--device cuda]
"""

from __future__ import annotations

import argparse

import torch

from bench.perf import timing
from cpep.probes import zero_shot_predictions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--references", type=int, default=300_000)
    p.add_argument("--queries", type=int, default=40_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    g = torch.Generator().manual_seed(0)
    refs = torch.randn(a.references, a.dim, generator=g)
    refs[a.references * 2 // 3:][:500] = refs[:500]  # exact ties across blocks
    labels = torch.randint(0, 8, (a.references,), generator=g)
    queries = torch.randn(a.queries, a.dim, generator=g)
    zero_shot_predictions(queries[:512], refs[:20_000], labels[:20_000], 8, a.k, a.device)  # warm-up
    device = torch.device(a.device)
    with timing.PeakMemory(device) as memory:
        took = timing.seconds(lambda: zero_shot_predictions(queries, refs, labels, 8, a.k, device), device)
    peak = f", peak device memory {memory.bytes / 2**20:.0f} MiB" if device.type == "cuda" else ""
    print(f"{a.references} references x {a.queries} queries, dim {a.dim}, k {a.k} on {a.device}: {took:.1f} s{peak}")

if __name__ == "__main__":
    main()
