"""CPEP's models and its two kinds of training, as `Training`s a stage runs: unimodal masked-autoencoder
pre-training and contrastive alignment. Every function takes the typed sections it reads (cpep.nn.config), and the
windows' shapes from the opened dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from cpep.config import Data, RunSeeds
from cpep.data.windows import WindowDataset, random_channel_roll
from cpep.nn.config import Contrastive, EmgTokens, Mae, PoseTokens
from cpep.nn.config import Encoder as EncoderSection
from cpep.nn.models import Encoder, MaskedAutoencoder, ProjectionHead
from cpep.nn.temperature import Temperature
from cpep.nn.train import Training, seed_everything
from cpep.probes import embed


@dataclass(frozen=True)
class Shapes:
    """What a model needs to know of the windows: EMG channels and pose dimensions (from the dataset), the window's
    samples and the pose's decimation (from the data section)."""
    channels: int
    pose_dims: int
    window: int
    pose_decimation: int

    @classmethod
    def of(cls, data, d: Data) -> "Shapes":
        return cls(data.channels, data.pose_dims, d.window, d.pose_decimation)


def make_encoder(modality: str, shapes: Shapes, encoder: EncoderSection, tokens: EmgTokens | PoseTokens,
                 pooling: str = "cls") -> Encoder:
    """The Transformer encoder of one modality. `pooling` chooses the window embedding only; pre-training reads
    the patch outputs, so an encoder pre-trained with one pooling serves another."""
    if modality == "emg":
        channels, samples, patch, bin_size = shapes.channels, shapes.window, tokens.patch, tokens.bin
    else:
        dec = shapes.pose_decimation
        channels, samples, patch, bin_size = shapes.pose_dims, shapes.window // dec, tokens.patch // dec, 1
    return Encoder(channels, samples, patch, encoder.width, encoder.depth, encoder.heads, encoder.mlp_ratio,
                   pooling, bin_size)


def encoder(modality: str, cfg: dict, data, pooling: str = "cls") -> Encoder:
    """make_encoder with the sections of a configuration (data, encoder, and emg or pose) and the dataset's shapes."""
    tokens = (EmgTokens if modality == "emg" else PoseTokens).of(cfg)
    return make_encoder(modality, Shapes.of(data, Data.of(cfg)), EncoderSection.of(cfg), tokens, pooling)


def initialised(seeds: RunSeeds, build):
    """build(), its weights drawn from the init seed; then the global RNG (masks, augmentations) follows the order
    seed. With no seed set both are the run seed, drawn from one stream as they always were."""
    seed_everything(seeds.init)
    model = build()
    if seeds.explicit:
        seed_everything(seeds.order)
    return model


def mae_training(modality: str, encoder: Callable[[], Encoder], mae: Mae, rotation_augment: int,
                 windows: WindowDataset, seeds: RunSeeds, device) -> Training:
    """Masked-autoencoder pre-training of the encoder `encoder()` builds, on `windows`; the stage keeps the
    encoder's state."""
    model = initialised(seeds, lambda: MaskedAutoencoder(encoder(), mae.decoder_width, mae.decoder_depth,
                                                         mae.decoder_heads, mae.mask_ratio)).to(device)
    if modality == "emg":
        def inputs(batch):
            return random_channel_roll(batch["emg"], rotation_augment)
    else:
        def inputs(batch):
            return batch["pose"]
    return Training(model, lambda batch: model(inputs(batch))[0], windows, result=model.encoder.state_dict)


class Aligned(torch.nn.Module):
    """EMG encoder + projection head against a pose encoder, scored by a configured objective (bench.plugins
    .Objective) with a learnable temperature, and a learnable logit bias where the objective's section starts one
    (its `options`, a cpep.nn.config.Contrastive)."""

    def __init__(self, emg: Encoder, pose: Encoder, objective):
        super().__init__()
        self.emg, self.pose = emg, pose
        self.head = ProjectionHead(self.emg.width, self.pose.width)
        settings: Contrastive = objective.options
        self.temperature = Temperature(settings.temperature, settings.learn_temperature)
        self.objective = objective
        bias = getattr(settings, "logit_bias", None)
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


def alignment_training(model: Aligned, inputs: dict, train_emg: bool, train_pose: bool, rotation_augment: int,
                       windows: WindowDataset, batch_size: int, device, cache_pose: bool = True,
                       in_memory_bytes: float = 4e9, workers: int = 0) -> Training:
    """Contrastive alignment of the EMG encoder (+ head) to the pose encoder, from the input stages' encoders
    (`pose_mae`, and `emg_mae` unless the EMG encoder starts at random); the stage keeps the whole model.

    With the pose encoder frozen its embedding of every window is computed once, before the first epoch, unless
    `cache_pose` is false: the same losses and weights, without running it every step.
    """
    model.pose.load_state_dict(inputs["pose_mae"])
    if "emg_mae" in inputs:
        model.emg.load_state_dict(inputs["emg_mae"])
    model.pose.requires_grad_(train_pose)
    model.emg.requires_grad_(train_emg)
    model.to(device)
    pose_cache = None
    if not train_pose and cache_pose:
        pose_cache = frozen_pose_embeddings(model, windows, batch_size, device, in_memory_bytes, workers)
    return Training(model, alignment_loss(model, rotation_augment, pose_cache), windows, drop_last=True,
                    after_step=model.temperature.clamp_,
                    extra_logs=lambda: {"temperature": model.temperature().item()})
