"""Supervised pose regression (L1 on standardised joint angles), shared by the PoseT and emg2pose baselines."""

from __future__ import annotations

import torch.nn.functional as F

from cpep.data.windows import random_channel_roll
from cpep.nn.train import fit
from cpep.pretraining import batches, initialised, schedule


def train(build, ctx):
    """Train the pose regressor `build()` makes (`model(emg)` against `model.target(pose)`) on the pre-training
    windows; returns (state, history)."""
    cfg = ctx.cfg
    s, shift = cfg["supervised"], cfg["emg"]["rotation_augment"]
    model = initialised(ctx, build).to(ctx.device)
    train_batches = batches(cfg, ctx.data.selection("pretrain"), s["batch_size"], ctx.device, ctx.seeds.order)

    def loss(batch):
        return F.l1_loss(model(random_channel_roll(batch["emg"], shift)).float(), model.target(batch["pose"]))

    history = fit(model, loss, train_batches, schedule(s), ctx.checkpoint, cfg["train"]["checkpoint_every"],
                  on_epoch=ctx.on_epoch, compile=cfg["train"]["compile"])
    return model.cpu().state_dict(), history
