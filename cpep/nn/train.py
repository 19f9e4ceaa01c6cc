"""The training loop shared by every stage: AdamW (fused on CUDA), warmup + cosine, checkpoint/resume, bf16
autocast on CUDA, and optionally torch.compile.

Batches follow a permutation drawn from (seed, epoch), and the global RNG state is checkpointed, so a run resumed
from a checkpoint ends with exactly the weights of an uninterrupted one. The loop reads the loss back from the
device once per epoch, not once per step.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from timm.optim import param_groups_weight_decay
from torch import nn

from cpep.data.windows import WindowDataset
from cpep.errors import DataError, TrainingDiverged
from cpep.files import replace_atomically


@dataclass(frozen=True)
class Schedule:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: float = 1.0
    grad_clip: float = 1.0

    @classmethod
    def of(cls, section) -> "Schedule":
        """From a schedule section of the configuration (cpep.nn.config.ScheduleSection)."""
        return cls(section.epochs, section.batch_size, section.lr, section.weight_decay, section.warmup_epochs)


@dataclass
class Training:
    """What a training stage trains: built by its method (bench.plugins.Step.build), run by `train`, and timed as
    it is by `cpep-bench perf`."""
    model: nn.Module
    loss: Callable[[dict], torch.Tensor]   # of a batch {"emg", "pose", "label", "index"}
    windows: WindowDataset                 # the windows it draws its batches from
    drop_last: bool = False                # every batch full, for an objective whose batch is part of it
    after_step: Callable[[], None] | None = None  # after each optimizer step (e.g. clamp a parameter)
    extra_logs: Callable[[], dict] | None = None  # logged each epoch beside the loss
    result: Callable[[], dict] | None = None      # the state dict the stage keeps (default: the model's)

    def state(self) -> dict:
        return self.result() if self.result else self.model.state_dict()


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but CUDA is not available")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; full float32 on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_forward(model: nn.Module, device: torch.device) -> bool:
    """torch.compile `model`'s forward in place (its state dict keeps the plain keys). On CUDA in "reduce-overhead"
    mode: CUDA graphs replay a step's kernels in one launch, which is where small batches of short windows spend
    their time. Compiled code sees full batches only (see `step_context`). Returns whether CUDA graphs are used."""
    graphs = device.type == "cuda"
    model.compile(mode="reduce-overhead" if graphs else "default")
    return graphs


def step_context(short: bool):
    """What a compiled model's training step runs under: full batches run its compiled code (CUDA graphs on
    CUDA); a `short` batch (the last of an epoch that keeps it) runs eagerly, so that the compiled code sees one
    shape and records one graph."""
    return torch.compiler.set_stance("force_eager") if short else contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Batches:
    """Mini-batches {"emg", "pose", "label", "index"} on `device`, in a permutation fixed by (seed, epoch); "index"
    is each window's position in the dataset, for per-window values computed once (a frozen encoder's embeddings).

    Batches come from the selection's packed windows (cpep.data.cache, written on first use). A selection that
    fits in `in_memory_bytes` is copied to the device once and indexed there; a larger one is gathered from the
    memory-mapped cache batch by batch, by `workers` loader processes if any. EMG is stored as float16 and cast to
    float32 on the device, so both ways give the same batches.
    """

    def __init__(self, dataset: WindowDataset, batch_size: int, device: torch.device, seed: int,
                 drop_last: bool = False, in_memory_bytes: float = 4e9, workers: int = 0):
        self.dataset, self.batch_size, self.device, self.seed = dataset, batch_size, device, seed
        self.workers = workers
        if len(dataset) == 0:
            raise DataError("no usable windows in this selection (recordings shorter than a window, or all IK failures)")
        self.drop_last = drop_last and len(dataset) > batch_size
        self.packed = dataset.packed()
        # Kept on the training device, so a step indexes device memory instead of copying from the host. A GPU
        # keeps EMG as float16 (half the memory) and casts each batch; on the CPU that cast costs as much as the
        # slicing, so EMG is cast once.
        emg_dtype = torch.float16 if device.type == "cuda" else torch.float32
        fits = self.packed.nbytes(emg_dtype) <= in_memory_bytes
        self.tensors = self.packed.to(device, emg_dtype) if fits else None

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch(self, epoch: int):
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return self._batches(torch.randperm(len(self.dataset), generator=g), g)

    def in_order(self):
        """Every window in the dataset's order, for embedding."""
        return self._batches(torch.arange(len(self.dataset)), torch.Generator().manual_seed(0))

    def _batches(self, order: torch.Tensor, g: torch.Generator):
        if self.tensors is not None:
            for idx in order.to(self.device).split(self.batch_size)[:len(self)]:
                batch = {k: t[idx] for k, t in self.tensors.items()}
                yield {**batch, "emg": batch["emg"].float(), "index": idx}
            return
        # Its own generator: a DataLoader otherwise draws from the global RNG, and the masks and augmentations
        # that follow would differ from the in-memory path's.
        pinned = self.device.type == "cuda"
        chunks = list((order.pin_memory() if pinned else order).split(self.batch_size)[:len(self)])
        loader = self.packed.loader(chunks, self.workers, g, pin_memory=pinned)
        for idx, batch in zip(chunks, loader):
            # from pinned memory, without blocking: a copy from pageable memory would wait for the device each step
            batch = {k: t.to(self.device, non_blocking=True) for k, t in {**batch, "index": idx}.items()}
            yield {**batch, "emg": batch["emg"].float()}


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices only: not on biases, norms, tokens, position embeddings or the
    temperature, which decay would pull towards values that mean something (tau -> 1). Frozen parameters are
    left out. Modules name their own exempt parameters in `no_weight_decay()`, as in timm."""
    exempt = []
    for prefix, module in model.named_modules():
        if hasattr(module, "no_weight_decay"):
            exempt += [f"{prefix}.{name}" if prefix else name for name in module.no_weight_decay()]
    return param_groups_weight_decay(model, weight_decay, no_weight_decay_list=exempt)


def make_optimizer(model: nn.Module, params: list[nn.Parameter], weight_decay: float, lr: float):
    """AdamW over the model's parameter groups, fused when every trained parameter is on CUDA."""
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr,
                             fused=True if all(p.is_cuda for p in params) else None)


def train_step(loss_fn: Callable[[dict], torch.Tensor], batch: dict, params: list[nn.Parameter], optimizer,
               device: torch.device, grad_clip: float, graphs: bool = False,
               after_step: Callable[[], None] | None = None) -> torch.Tensor:
    """One optimizer step on `batch` (the learning-rate schedule is the caller's); returns the loss. Nothing in
    it reads a value back from the device."""
    if graphs:  # a new step: the graphs' outputs of the last one may be overwritten now
        torch.compiler.cudagraph_mark_step_begin()
    with autocast(device):
        loss = loss_fn(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    if after_step:
        after_step()
    return loss


def fit(model: nn.Module, loss_fn: Callable[[dict], torch.Tensor], batches: Batches, schedule: Schedule,
        checkpoint: Path | None = None, checkpoint_every: int = 1,
        extra_logs: Callable[[], dict] | None = None,
        on_epoch: Callable[[int, dict], None] | None = None,
        after_step: Callable[[], None] | None = None, compile: bool = False) -> list[dict]:
    """Train `model` on `loss_fn(batch)`; returns one dict per epoch (loss, lr, seconds, and `extra_logs()`).

    `after_step()` runs after every optimizer step (e.g. to clamp a parameter back into its range). With
    `compile`, the model's forward is compiled in place (compile_forward), so its state dict keeps its keys, and
    full batches run the compiled code (CUDA graphs on CUDA) while a shorter last batch runs eagerly.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    device = batches.device
    graphs = compile and compile_forward(model, device)
    optimizer = make_optimizer(model, params, schedule.weight_decay, schedule.lr)
    steps = max(1, len(batches)) * schedule.epochs
    warmup = max(1, int(schedule.warmup_epochs * len(batches)))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    history: list[dict] = []
    start_epoch = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if torch.cuda.is_available() and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        history, start_epoch = state["history"], state["epoch"]

    for epoch in range(start_epoch, schedule.epochs):
        began = time.perf_counter()
        model.train()
        total = torch.zeros((), device=device)
        count = 0
        for batch in batches.epoch(epoch):
            with step_context(compile and len(batch["index"]) < batches.batch_size):
                loss = train_step(loss_fn, batch, params, optimizer, device, schedule.grad_clip, graphs, after_step)
            scheduler.step()
            total += loss.detach().float()
            count += 1
        mean_loss = (total / max(count, 1)).item()
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(f"loss became {mean_loss} in epoch {epoch + 1}")
        log = {"epoch": epoch + 1, "loss": mean_loss, "lr": scheduler.get_last_lr()[0],
               "seconds": time.perf_counter() - began, **(extra_logs() if extra_logs else {})}
        history.append(log)
        if on_epoch:
            on_epoch(epoch + 1, log)
        last = epoch + 1 == schedule.epochs
        if checkpoint is not None and not last and (epoch + 1) % checkpoint_every == 0:
            state = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "history": history, "epoch": epoch + 1,
            }
            replace_atomically(checkpoint, lambda tmp: torch.save(state, tmp))
    return history


def train(training: Training, schedule: Schedule, device: torch.device, seed: int, checkpoint: Path | None = None,
          checkpoint_every: int = 1, on_epoch: Callable[[int, dict], None] | None = None, compile: bool = False,
          in_memory_bytes: float = 4e9, workers: int = 0) -> tuple[dict, list[dict]]:
    """Fit `training` on batches of its windows in the order of `seed`; returns (its state on the CPU, history)."""
    batches = Batches(training.windows, schedule.batch_size, device, seed, drop_last=training.drop_last,
                      in_memory_bytes=in_memory_bytes, workers=workers)
    history = fit(training.model, training.loss, batches, schedule, checkpoint, checkpoint_every,
                  extra_logs=training.extra_logs, on_epoch=on_epoch, after_step=training.after_step, compile=compile)
    training.model.cpu()
    return training.state(), history
