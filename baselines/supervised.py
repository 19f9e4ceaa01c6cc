"""Supervised pose regression (L1 on standardised joint angles), shared by the PoseT and TDS baselines."""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F

from cpep.config import RunSeeds
from cpep.data.windows import WindowDataset, random_channel_roll
from cpep.nn.train import Training
from cpep.pretraining import initialised


def training(build: Callable, rotation_augment: int, windows: WindowDataset, seeds: RunSeeds, device) -> Training:
    """The pose regressor `build()` makes (`model(emg)` against `model.target(pose)`), trained on `windows`, EMG
    rolled by up to `rotation_augment` channels."""
    model = initialised(seeds, build).to(device)

    def loss(batch):
        return F.l1_loss(model(random_channel_roll(batch["emg"], rotation_augment)).float(), model.target(batch["pose"]))

    return Training(model, loss, windows)
