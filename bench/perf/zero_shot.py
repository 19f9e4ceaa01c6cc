"""Zero-shot classification (cpep.probes.zero_shot: k nearest pose references by cosine) on random embeddings of
a realistic size: queries per second, and the similarity product's FLOPs as a fraction of the roofline."""

from __future__ import annotations

import torch

from bench.perf import table, timing
from cpep.probes import zero_shot

SIZE = (16384, 2048)  # (references, queries): the pose references of a probe's training side, a test side
CLASSES = 4


def measure(dim: int, k: int, device: torch.device, plan: timing.Plan, references: int, queries: int,
            roofline_flop_s: float) -> dict:
    g = torch.Generator().manual_seed(0)
    refs, qs = torch.randn(references, dim, generator=g), torch.randn(queries, dim, generator=g)
    ref_labels = torch.randint(0, CLASSES, (references,), generator=g)
    query_labels = torch.randint(0, CLASSES, (queries,), generator=g)
    # Embeddings stay on the CPU, as the evaluation stage keeps them; zero_shot moves blocks to the device.
    t = timing.median_rate(lambda: zero_shot(qs, refs, ref_labels, query_labels, CLASSES, k, device), queries,
                           device, plan)
    r = table.row("zero-shot", f"zero-shot, k={k}", t.rate, "queries/s", size=f"{references}x{dim}",
                  batch=queries, units_per_repeat=t.units, repeats=t.repeats)
    return table.with_flops(r, 2 * queries * references * dim, roofline_flop_s)  # the similarities' product
