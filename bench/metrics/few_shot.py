"""Few-shot linear probes: the linear probe (cpep.probes.linear_probe) trained on only k labelled training
windows per class, k = 1, 5, 10, 20, scored on all the held-out users' windows (balanced accuracy). Each k is the
mean over RESAMPLES draws of the k windows; the draws follow the run's order seed (the run seed unless seeds.order
is set): the same seed draws the same windows, another seed others. A class with fewer than k training windows
contributes all it has.
Keys lp_k01, lp_k05, lp_k10, lp_k20 (records: lp_k01_id, lp_k01_unseen, ...): two digits, so that they sort by k
in the report, which shows metrics beyond the paper's four in name order.
"""

from bench.metrics.linear_probe import Settings as Probe
from bench.plugins import Metric as Base

SHOTS = (1, 5, 10, 20)
RESAMPLES = 5


def sample(labels, num_classes: int, k: int, generator):
    """Indices of k windows of each class (all of a class's windows when it has fewer), drawn without replacement
    by `generator` (a torch.Generator), in class order."""
    import torch
    picked = []
    for c in range(num_classes):
        members = (labels == c).nonzero().flatten()
        picked.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.cat(picked)


class Metric(Base):
    needs = "lp"
    keys = tuple(f"lp_k{k:02d}" for k in SHOTS)
    seeded = True
    sections = ("linear_probe",)  # the probe it fits, on fewer windows

    def compute(self, train, test, num_classes, cfg, device, seed=0):
        import torch

        from cpep.probes import linear_probe
        (x, y), probe = train, Probe.of(cfg)
        generator = torch.Generator().manual_seed(seed)
        scores = {}
        for k in SHOTS:
            draws = [sample(y, num_classes, k, generator) for _ in range(RESAMPLES)]
            scores[f"lp_k{k:02d}"] = sum(linear_probe(x[i], y[i], *test, num_classes, probe.weight_decay,
                                                  probe.max_iter) for i in draws) / RESAMPLES
        return scores
