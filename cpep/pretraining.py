"""CPEP's stages as functions of a stage context: unimodal MAE pre-training and contrastive alignment.

`ctx` is what the harness gives a training stage (bench.plugins.Context): cfg, data, seed, device, inputs (the
state dicts of the stages it reads), checkpoint and on_epoch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cpep.data import protocols
from cpep.data.emg2pose import Emg2PoseData
from cpep.data.gestures import load_vocab
from cpep.data.windows import WindowSpec, random_channel_roll
from cpep.nn.models import Encoder, MaskedAutoencoder, ProjectionHead
from cpep.nn.temperature import Temperature
from cpep.nn.train import Batches, Schedule, fit, seed_everything
from cpep.probes import embed


def open_data(cfg: dict, root: Path, cache_dir: Path | None = None, lenient: bool = False) -> Emg2PoseData:
    """The dataset at `root` as the configuration reads it (lenient: Emg2PoseData's)."""
    d = cfg["data"]
    spec = WindowSpec(d["window"], d["stride"], d["pose_decimation"], protocols.get(d["protocol"]))
    return Emg2PoseData(root, load_vocab(d["vocab"]), spec, cache_dir, d["allow_missing"], lenient)


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


def initialised(ctx, build):
    """build(), its weights drawn from the init seed; then the global RNG (masks, augmentations) follows the order
    seed. With no seed set both are the run seed, drawn from one stream as they always were."""
    seeds = ctx.seeds
    seed_everything(seeds.init)
    model = build()
    if seeds.explicit:
        seed_everything(seeds.order)
    return model


def pretrain_mae(modality: str, ctx):
    """Masked-autoencoder pre-training of one modality's encoder; returns (encoder state, history)."""
    cfg, m = ctx.cfg, ctx.cfg["mae"]
    mae = initialised(ctx, lambda: make_mae(modality, cfg, ctx.data)).to(ctx.device)
    shift = cfg["emg"]["rotation_augment"]
    inputs = (lambda b: random_channel_roll(b["emg"], shift)) if modality == "emg" else (lambda b: b["pose"])
    train = batches(cfg, ctx.data.selection("pretrain"), m["batch_size"], ctx.device, ctx.seeds.order)
    history = fit(mae, lambda batch: mae(inputs(batch))[0], train, schedule(m), ctx.checkpoint,
                  cfg["train"]["checkpoint_every"], on_epoch=ctx.on_epoch, compile=cfg["train"]["compile"])
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

    def forward(self, emg: torch.Tensor, pose: torch.Tensor | None = None,
                pose_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """The objective's loss of EMG windows against their pose windows, or against the pose encoder's
        embeddings of those windows when they are given (computed once by a frozen encoder)."""
        if pose_embedding is None:
            pose_embedding = self.pose(pose)
        u = F.normalize(self.emg_query(emg).float(), dim=-1)
        v = F.normalize(pose_embedding.float(), dim=-1)
        return self.objective(u, v, self.temperature.scale(), self.logit_bias)

    def loss(self, emg: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """The loss of EMG windows against their pose windows."""
        return self(emg, pose)


def frozen_pose_embeddings(model: Aligned, dataset, batch_size: int, device, in_memory_bytes: float = 4e9,
                           workers: int = 0) -> torch.Tensor:
    """The pose encoder's embedding of every window of `dataset`, in its order, on `device` (N, D) float32.

    For a frozen pose encoder in inference mode, whose input is not augmented: each window's embedding is the
    same in every epoch. Computed under the training autocast; bf16 widens to float32 exactly, and the loss
    reads it in float32.
    """
    model.pose.eval()
    x, _ = embed(lambda batch: model.pose(batch["pose"]), dataset, device, batch_size, in_memory_bytes, workers)
    return x.to(device)


def alignment_loss(model: Aligned, shift: int, pose_cache: torch.Tensor | None = None):
    """The loss of one alignment batch, EMG rolled by up to `shift` channels. With `pose_cache`
    (frozen_pose_embeddings of the dataset the batches come from), each batch looks its
    pose embeddings up by its windows' "index" and the pose encoder does not run."""
    frozen = not any(p.requires_grad for p in model.pose.parameters())

    def loss(batch: dict) -> torch.Tensor:
        emg = random_channel_roll(batch["emg"], shift)
        if pose_cache is not None:
            return model(emg, pose_embedding=pose_cache[batch["index"]])
        if frozen:
            model.pose.eval()  # also keep any dropout/normalisation in inference mode (fit sets train mode)
        return model(emg, batch["pose"])
    return loss


def fraction_of(windows, fraction: float, seed: int):
    """`fraction` of the windows (rounded, at least one), drawn without replacement by the data seed and kept in
    the selection's order; all of them at 1."""
    if fraction >= 1.0:
        return windows
    n = max(1, round(fraction * len(windows)))
    keep = torch.randperm(len(windows), generator=torch.Generator().manual_seed(seed))[:n]
    return windows.part(keep.sort().values.numpy())


def align(ctx, objective, cache_pose: bool = True):
    """Contrastive alignment of the EMG encoder (+ head) to the pose encoder; returns (Aligned state, history).

    With the pose encoder frozen (align.train_pose false) its embedding of every window is computed once, before
    the first epoch, unless `cache_pose` is false: the same losses and weights, without running it every step.
    """
    cfg = ctx.cfg
    a, shift = cfg["align"], cfg["emg"]["rotation_augment"]
    model = initialised(ctx, lambda: Aligned(cfg, ctx.data, objective))
    model.pose.load_state_dict(ctx.inputs["pose_mae"])
    if "emg_mae" in ctx.inputs:
        model.emg.load_state_dict(ctx.inputs["emg_mae"])
    model.pose.requires_grad_(a["train_pose"])
    model.emg.requires_grad_(a["train_emg"])
    model.to(ctx.device)
    windows = fraction_of(ctx.data.selection("pretrain"), cfg["data"]["fraction"], ctx.seeds.data)
    pose_cache = None
    if not a["train_pose"] and cache_pose:
        pose_cache = frozen_pose_embeddings(model, windows, a["batch_size"], ctx.device,
                                            cfg["data"]["in_memory_gb"] * 1e9, cfg["train"]["workers"])
    train = batches(cfg, windows, a["batch_size"], ctx.device, ctx.seeds.order, drop_last=True)
    history = fit(model, alignment_loss(model, shift, pose_cache), train, schedule(a, drop_last=True), ctx.checkpoint,
                  cfg["train"]["checkpoint_every"], extra_logs=lambda: {"temperature": model.temperature().item()},
                  on_epoch=ctx.on_epoch, after_step=model.temperature.clamp_, compile=cfg["train"]["compile"])
    return model.cpu().state_dict(), history
