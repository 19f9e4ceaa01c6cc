"""PoseT: CPEP's Transformer EMG encoder trained from scratch, with supervision, to regress hand pose.

Our reading of the paper's "PoseT (supervised)": the same encoder (patches, [CLS], blocks) and a linear head from
the pooled window embedding to the mean joint angles of every token's time span (20 x tokens values), trained on
L1. Linear probes read the pooled embedding, as for the other EMG encoders.
"""

from __future__ import annotations

import torch
from torch import nn

from cpep.nn.models import Encoder


class PoseTransformer(nn.Module):
    def __init__(self, encoder: Encoder, joints: int = 20):
        super().__init__()
        self.encoder = encoder
        self.tokens = encoder.num_patches
        self.head = nn.Linear(encoder.width, joints * self.tokens)

    def embed(self, emg: torch.Tensor) -> torch.Tensor:
        return self.encoder(emg)

    def forward(self, emg: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(emg)).reshape(len(emg), -1, self.tokens)

    def target(self, pose: torch.Tensor) -> torch.Tensor:
        b, j, t = pose.shape
        return pose.reshape(b, j, self.tokens, t // self.tokens).mean(-1)
