"""Supervised pose regression (L1 on standardised joint angles), shared by the PoseT and emg2pose baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from baselines.poset import PoseTransformer
from baselines.tds import Emg2PoseRegressor
from cpep.data import Emg2PoseData, random_channel_roll
from cpep.pipeline import batches, make_encoder, schedule
from cpep.train import fit, seed_everything


def build(method: str, cfg: dict) -> torch.nn.Module:
    if method == "poset":
        return PoseTransformer(make_encoder("emg", cfg))
    if method == "emg2pose":
        d, t = cfg["data"], cfg["tds"]
        return Emg2PoseRegressor(d["window"], d["pose_decimation"], t["width"], t["features"], t["decoder_hidden"])
    raise KeyError(method)


def train(method: str, cfg: dict, data: Emg2PoseData, seed: int, device: torch.device,
          checkpoint: Path | None = None, on_epoch: Callable | None = None):
    """Train a pose regressor on the pre-training windows; returns (state, history)."""
    seed_everything(seed)
    s, shift = cfg["supervised"], cfg["emg"]["rotation_augment"]
    model = build(method, cfg).to(device)
    train_batches = batches(cfg, data.windows(data.pretrain_recordings()), s["batch_size"], device, seed)

    def loss(batch):
        emg, pose, _ = batch
        return F.l1_loss(model(random_channel_roll(emg, shift)).float(), model.target(pose))

    history = fit(model, loss, train_batches, schedule(s), checkpoint, cfg["train"]["checkpoint_every"],
                  on_epoch=on_epoch)
    return model.cpu().state_dict(), history
