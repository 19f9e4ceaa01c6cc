"""SigLIP's pairwise sigmoid loss (Zhai et al. 2023): every (EMG window, pose window) pair of the batch is a
binary decision, matched (the diagonal) or not, scored by sigmoid(logit_scale * u.v + logit_bias). The sum over
all pairs is divided by the batch size, as SigLIP does; there is no softmax over the batch.

SigLIP starts the bias at -10 and the logit scale at 10 (temperature 0.1): most pairs of a batch are negatives,
and a strongly negative bias starts the model near that prior instead of spending its first steps learning it.
The bias is declared here; the temperature is the model's (align.temperature), so a variant using this objective
sets align.temperature = 0.1 for SigLIP's start (bench/suites/beyond.toml does).
"""

import torch
import torch.nn.functional as F

from bench.plugins import Objective as Base


class Objective(Base):
    init_logit_bias = -10.0

    def forward(self, u, v, logit_scale, logit_bias=None):
        logits = logit_scale * u @ v.T
        if logit_bias is not None:
            logits = logits + logit_bias
        signs = 2.0 * torch.eye(len(u), device=u.device, dtype=logits.dtype) - 1.0  # +1 matched, -1 not
        return -F.logsigmoid(signs * logits).sum() / len(u)
