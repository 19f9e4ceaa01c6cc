"""CPEP's stages as functions of a stage context: unimodal MAE pre-training and contrastive alignment.

`ctx` is what the harness gives a training stage (bench.plugins.Context): cfg, data, seed, device, inputs (the
state dicts of the stages it reads), checkpoint and on_epoch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cpep.data import Emg2PoseData, WindowSpec, random_channel_roll
from cpep.gestures import load_vocab
from cpep.models import Encoder, MaskedAutoencoder, ProjectionHead
from cpep.objectives import Temperature
from cpep.train import Batches, Schedule, fit, seed_everything


def open_data(cfg: dict, root: Path, cache_dir: Path | None = None) -> Emg2PoseData:
    d = cfg["data"]
    return Emg2PoseData(root, load_vocab(d["vocab"]), WindowSpec(d["window"], d["stride"], d["pose_decimation"]),
                        cache_dir)


def make_encoder(modality: str, cfg: dict, data) -> Encoder:
    """The Transformer encoder of one modality, sized for the dataset's channels (EMG) or pose dimensions."""
    e, d = cfg["encoder"], cfg["data"]
    if modality == "emg":
        channels, samples, patch, bin_size = data.channels, d["window"], cfg["emg"]["patch"], cfg["emg"]["bin"]
    else:
        dec = d["pose_decimation"]
        channels, samples, patch, bin_size = data.pose_dims, d["window"] // dec, cfg["pose"]["patch"] // dec, 1
    return Encoder(channels, samples, patch, e["width"], e["depth"], e["heads"], e["mlp_ratio"],
                   cfg["embedding"]["pooling"], bin_size)


def make_mae(modality: str, cfg: dict, data) -> MaskedAutoencoder:
    m = cfg["mae"]
    return MaskedAutoencoder(make_encoder(modality, cfg, data), m["decoder_width"], m["decoder_depth"],
                             m["decoder_heads"], m["mask_ratio"])


def schedule(section: dict, drop_last: bool = False) -> Schedule:
    return Schedule(section["epochs"], section["batch_size"], section["lr"], section["weight_decay"],
                    section["warmup_epochs"], drop_last=drop_last)


def batches(cfg: dict, dataset, batch_size: int, device, seed: int, drop_last: bool = False) -> Batches:
    return Batches(dataset, batch_size, device, seed, drop_last=drop_last,
                   in_memory_bytes=cfg["data"]["in_memory_gb"] * 1e9, workers=cfg["train"]["workers"])


def pretrain_mae(modality: str, ctx):
    """Masked-autoencoder pre-training of one modality's encoder; returns (encoder state, history)."""
    seed_everything(ctx.seed)
    cfg, m = ctx.cfg, ctx.cfg["mae"]
    mae = make_mae(modality, cfg, ctx.data).to(ctx.device)
    shift = cfg["emg"]["rotation_augment"]
    inputs = (lambda b: random_channel_roll(b["emg"], shift)) if modality == "emg" else (lambda b: b["pose"])
    train = batches(cfg, ctx.data.selection("pretrain"), m["batch_size"], ctx.device, ctx.seed)
    history = fit(mae, lambda batch: mae(inputs(batch))[0], train, schedule(m), ctx.checkpoint,
                  cfg["train"]["checkpoint_every"], on_epoch=ctx.on_epoch)
    return mae.encoder.cpu().state_dict(), history


class Aligned(torch.nn.Module):
    """EMG encoder + projection head against a pose encoder, scored by an objective with a learnable
    temperature (and a learnable logit bias when the objective starts one)."""

    def __init__(self, cfg: dict, data, objective):
        super().__init__()
        self.emg = make_encoder("emg", cfg, data)
        self.pose = make_encoder("pose", cfg, data)
        self.head = ProjectionHead(self.emg.width, self.pose.width)
        a = cfg["align"]
        self.temperature = Temperature(a["temperature"], a["learn_temperature"])
        self.objective = objective
        bias = objective.init_logit_bias
        self.logit_bias = torch.nn.Parameter(torch.tensor(float(bias))) if bias is not None else None

    def emg_query(self, emg: torch.Tensor) -> torch.Tensor:
        return self.head(self.emg(emg))

    def loss(self, emg: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        u = F.normalize(self.emg_query(emg).float(), dim=-1)
        v = F.normalize(self.pose(pose).float(), dim=-1)
        return self.objective(u, v, self.temperature.scale(), self.logit_bias)


def align(ctx, objective):
    """Contrastive alignment of the EMG encoder (+ head) to the pose encoder; returns (Aligned state, history)."""
    seed_everything(ctx.seed)
    cfg = ctx.cfg
    a, shift = cfg["align"], cfg["emg"]["rotation_augment"]
    model = Aligned(cfg, ctx.data, objective)
    model.pose.load_state_dict(ctx.inputs["pose_mae"])
    if "emg_mae" in ctx.inputs:
        model.emg.load_state_dict(ctx.inputs["emg_mae"])
    model.pose.requires_grad_(a["train_pose"])
    model.emg.requires_grad_(a["train_emg"])
    model.to(ctx.device)
    if not a["train_pose"]:
        model.pose.eval()  # frozen: also keep any dropout/normalisation in inference mode
    train = batches(cfg, ctx.data.selection("pretrain"), a["batch_size"], ctx.device, ctx.seed, drop_last=True)

    def loss(batch):
        if not a["train_pose"]:
            model.pose.eval()
        return model.loss(random_channel_roll(batch["emg"], shift), batch["pose"])

    history = fit(model, loss, train, schedule(a, drop_last=True), ctx.checkpoint, cfg["train"]["checkpoint_every"],
                  extra_logs=lambda: {"temperature": model.temperature().item()}, on_epoch=ctx.on_epoch,
                  after_step=model.temperature.clamp_)
    return model.cpu().state_dict(), history
