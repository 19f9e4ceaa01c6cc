"""The learnable temperature of the contrastive objectives (bench/objectives)."""

import math

import torch
from torch import nn

from cpep.nn.config import MIN_TEMPERATURE

MAX_LOGIT_SCALE = 1.0 / MIN_TEMPERATURE


class Temperature(nn.Module):
    """The InfoNCE temperature, learned as log(1 / tau) so that it stays positive.

    `scale()` is not clamped, so the loss keeps a gradient at the bound; call `clamp_()` after each optimizer
    step to hold tau in [1 / MAX_LOGIT_SCALE, 1].
    """

    def __init__(self, initial: float, learnable: bool = True):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / initial)), requires_grad=learnable)

    @torch.no_grad()
    def clamp_(self) -> None:
        self.log_scale.clamp_(0.0, math.log(MAX_LOGIT_SCALE))

    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def forward(self) -> torch.Tensor:
        return 1.0 / self.scale().detach()
