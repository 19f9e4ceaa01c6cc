"""An objective added as one file: InfoNCE in one direction only (each EMG window picks its pose among the
batch), with a learnable logit bias and a parameter of its own, label smoothing."""

from dataclasses import dataclass

from bench.plugins import Objective as Base
from cpep.config import param
from cpep.nn.config import Contrastive


@dataclass(frozen=True)
class Settings(Contrastive):
    section = "emg_to_pose"
    logit_bias: float = param(0.0, why="where the learnable logit bias starts")
    label_smoothing: float = param(0.0, ">= 0, < 1", "the share of each target spread over the batch's other poses")


class Objective(Base):
    config = (Settings,)

    def forward(self, u, v, logit_scale, logit_bias=None):
        import torch
        import torch.nn.functional as F
        logits = logit_scale * u @ v.T + logit_bias
        return F.cross_entropy(logits, torch.arange(len(u), device=u.device),
                               label_smoothing=self.options.label_smoothing)
