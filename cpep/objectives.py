"""The contrastive objective of CPEP's alignment stage."""

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = 100.0  # temperature never below 0.01, as in CLIP


class Temperature(nn.Module):
    """The InfoNCE temperature, learned as log(1 / tau) so that it stays positive."""

    def __init__(self, initial: float, learnable: bool = True):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / initial)), requires_grad=learnable)

    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(self) -> torch.Tensor:
        return 1.0 / self.scale().detach()


def symmetric_info_nce(u: torch.Tensor, v: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean of the EMG->pose and pose->EMG cross-entropies; row i of u and v are the positive pair."""
    u = F.normalize(u.float(), dim=-1)
    v = F.normalize(v.float(), dim=-1)
    logits = logit_scale * u @ v.T
    target = torch.arange(len(u), device=u.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
