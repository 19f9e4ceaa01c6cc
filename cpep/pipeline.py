"""CPEP's stages as functions of (config, data, seed): unimodal MAE, contrastive alignment, evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from cpep import schema
from cpep.data import Emg2PoseData, WindowSpec, load_vocab, random_channel_roll
from cpep.evaluate import embed, linear_probe, zero_shot
from cpep.models import Encoder, MaskedAutoencoder, ProjectionHead
from cpep.objectives import Temperature, symmetric_info_nce
from cpep.train import Batches, Schedule, fit, seed_everything

METRICS = ("lp_id", "lp_unseen", "zs_id", "zs_unseen")


def open_data(cfg: dict, root: Path, cache_dir: Path | None = None) -> Emg2PoseData:
    d = cfg["data"]
    vocab = d["vocab"] or f"{d['name']}-v1"
    return Emg2PoseData(root, load_vocab(vocab), WindowSpec(d["window"], d["stride"], d["pose_decimation"]),
                        cache_dir)


def make_encoder(modality: str, cfg: dict) -> Encoder:
    e, d = cfg["encoder"], cfg["data"]
    if modality == "emg":
        channels, samples, patch, bin_size = schema.NUM_CHANNELS, d["window"], cfg["emg"]["patch"], cfg["emg"]["bin"]
    else:
        dec = d["pose_decimation"]
        channels, samples, patch, bin_size = schema.NUM_JOINTS, d["window"] // dec, cfg["pose"]["patch"] // dec, 1
    return Encoder(channels, samples, patch, e["width"], e["depth"], e["heads"], e["mlp_ratio"], e["pooling"],
                   bin_size)


def make_mae(modality: str, cfg: dict) -> MaskedAutoencoder:
    m = cfg["mae"]
    return MaskedAutoencoder(make_encoder(modality, cfg), m["decoder_width"], m["decoder_depth"],
                             cfg["encoder"]["heads"], m["mask_ratio"])


def schedule(section: dict, drop_last: bool = False) -> Schedule:
    return Schedule(section["epochs"], section["batch_size"], section["lr"], section["weight_decay"],
                    section["warmup_epochs"], drop_last=drop_last)


def batches(cfg: dict, dataset, batch_size: int, device, seed: int, drop_last: bool = False) -> Batches:
    return Batches(dataset, batch_size, device, seed, drop_last=drop_last,
                   in_memory_bytes=cfg["data"]["in_memory_gb"] * 1e9, workers=cfg["train"]["workers"])


def pretrain_mae(modality: str, cfg: dict, data: Emg2PoseData, seed: int, device: torch.device,
                 checkpoint: Path | None = None, on_epoch: Callable | None = None):
    """Masked-autoencoder pre-training of one modality's encoder; returns (encoder state, history)."""
    seed_everything(seed)
    m = cfg["mae"]
    mae = make_mae(modality, cfg).to(device)
    shift = cfg["emg"]["rotation_augment"]
    inputs = (lambda batch: random_channel_roll(batch[0], shift)) if modality == "emg" else (lambda batch: batch[1])
    train = batches(cfg, data.windows(data.pretrain_recordings()), m["batch_size"], device, seed)
    history = fit(mae, lambda batch: mae(inputs(batch)), train, schedule(m), checkpoint,
                  cfg["train"]["checkpoint_every"], on_epoch=on_epoch)
    return mae.encoder.cpu().state_dict(), history


class Aligned(torch.nn.Module):
    """EMG encoder + projection head against a pose encoder, with a learnable temperature."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.emg = make_encoder("emg", cfg)
        self.pose = make_encoder("pose", cfg)
        self.head = ProjectionHead(self.emg.width, self.pose.width)
        a = cfg["align"]
        self.temperature = Temperature(a["temperature"], a["learn_temperature"])

    def emg_query(self, emg: torch.Tensor) -> torch.Tensor:
        return self.head(self.emg(emg))

    def loss(self, emg: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        return symmetric_info_nce(self.emg_query(emg), self.pose(pose), self.temperature.scale())


def align(cfg: dict, data: Emg2PoseData, seed: int, device: torch.device, pose_state: dict,
          emg_state: dict | None, checkpoint: Path | None = None, on_epoch: Callable | None = None):
    """Contrastive alignment (symmetric InfoNCE); returns (Aligned state, history)."""
    seed_everything(seed)
    a, a_shift = cfg["align"], cfg["emg"]["rotation_augment"]
    model = Aligned(cfg)
    model.pose.load_state_dict(pose_state)
    if emg_state is not None:
        model.emg.load_state_dict(emg_state)
    model.pose.requires_grad_(a["train_pose"])
    model.emg.requires_grad_(a["train_emg"])
    model.to(device)
    if not a["train_pose"]:
        model.pose.eval()  # frozen: also keep any dropout/normalisation in inference mode
    train = batches(cfg, data.windows(data.pretrain_recordings()), a["batch_size"], device, seed, drop_last=True)

    def loss(batch):
        if not a["train_pose"]:
            model.pose.eval()
        return model.loss(random_channel_roll(batch[0], a_shift), batch[1])

    history = fit(model, loss, train, schedule(a, drop_last=True), checkpoint, cfg["train"]["checkpoint_every"],
                  extra_logs=lambda: {"temperature": model.temperature().item()}, on_epoch=on_epoch)
    return model.cpu().state_dict(), history


def evaluate(cfg: dict, data: Emg2PoseData, device: torch.device,
             lp_features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             zs_query: Callable | None = None, zs_reference: Callable | None = None) -> dict[str, float | None]:
    """LP and (when the method has a pose-aligned EMG embedding) ZS balanced accuracy on both class sets.

    Linear probes train on training users' windows and test on held-out test users' windows. Zero-shot
    references are the pose embeddings of the training users' windows; the queries are test users' EMG.
    """
    metrics: dict[str, float | None] = dict.fromkeys(METRICS)
    in_mem, workers = cfg["data"]["in_memory_gb"] * 1e9, cfg["train"]["workers"]

    def run(fn, dataset):
        return embed(fn, dataset, device, in_memory_bytes=in_mem, workers=workers)

    for kind in ("id", "unseen"):
        train_rows, test_rows = data.probe_recordings(kind)
        train, test = data.windows(train_rows, kind), data.windows(test_rows, kind)
        n = len(data.vocab.classes(kind))
        (xs, ys), (xt, yt) = run(lp_features, train), run(lp_features, test)
        metrics[f"lp_{kind}"] = linear_probe(xs, ys, xt, yt, n, cfg["eval"]["lp_weight_decay"],
                                             cfg["eval"]["lp_max_iter"])
        if zs_query is not None:
            (refs, ref_y), (queries, query_y) = run(zs_reference, train), run(zs_query, test)
            metrics[f"zs_{kind}"] = zero_shot(queries, refs, ref_y, query_y, n, cfg["eval"]["k"])
    return metrics
