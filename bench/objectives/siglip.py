"""SigLIP's pairwise sigmoid loss (Zhai et al. 2023): every (EMG window, pose window) pair of the batch is a
binary decision, matched (the diagonal) or not, scored by sigmoid(logit_scale * u.v + logit_bias). The sum over
all pairs is divided by the batch size, as SigLIP does; there is no softmax over the batch.
"""

from dataclasses import dataclass

from bench.plugins import Objective as Base
from cpep.config import param
from cpep.nn.config import MIN_TEMPERATURE, Contrastive


@dataclass(frozen=True)
class Settings(Contrastive):
    section = "siglip"
    temperature: float = param(0.1, f">= {MIN_TEMPERATURE}, <= 1", "SigLIP's start: logit scale 10")
    logit_bias: float = param(-10.0, "> -100, < 100", why="SigLIP's start: most pairs of a batch are negatives, and a strongly "
                                         "negative bias starts the model near that prior instead of spending its "
                                         "first steps learning it")


class Objective(Base):
    config = (Settings,)

    def forward(self, u, v, logit_scale, logit_bias=None):
        import torch
        import torch.nn.functional as F
        logits = logit_scale * u @ v.T
        if logit_bias is not None:
            logits = logits + logit_bias
        signs = 2.0 * torch.eye(len(u), device=u.device, dtype=logits.dtype) - 1.0  # +1 matched, -1 not
        return -F.logsigmoid(signs * logits).sum() / len(u)
