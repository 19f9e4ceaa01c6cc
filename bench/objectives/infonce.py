"""Symmetric InfoNCE (CLIP's loss, the paper's): the mean of the EMG->pose and pose->EMG cross-entropies, where
row i of u and v is the positive pair and every other row of the batch a negative."""

import torch
import torch.nn.functional as F

from bench.plugins import Objective as Base


class Objective(Base):
    def forward(self, u, v, logit_scale, logit_bias=None):
        logits = logit_scale * u @ v.T
        if logit_bias is not None:
            logits = logits + logit_bias
        target = torch.arange(len(u), device=u.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
