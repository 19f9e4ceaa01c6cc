"""Symmetric InfoNCE (CLIP's loss, the paper's): the mean of the EMG->pose and pose->EMG cross-entropies, where
row i of u and v is the positive pair and every other row of the batch a negative."""

from dataclasses import dataclass

from bench.plugins import Objective as Base
from cpep.nn.config import Contrastive


@dataclass(frozen=True)
class Settings(Contrastive):
    section = "infonce"


class Objective(Base):
    config = (Settings,)

    def forward(self, u, v, logit_scale, logit_bias=None):
        import torch
        import torch.nn.functional as F
        logits = logit_scale * u @ v.T
        if logit_bias is not None:
            logits = logits + logit_bias
        target = torch.arange(len(u), device=u.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
