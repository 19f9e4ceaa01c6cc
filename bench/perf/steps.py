"""Training steps as the stages run them (autocast, backward, gradient clipping, AdamW), at the default model
size and at paper sizes, on one batch of real windows: windows/s, FLOPs per step, peak memory."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from bench import plugins
from bench.perf import table, timing
from cpep.data.windows import random_channel_roll
from cpep.nn.train import autocast, compile_forward, make_optimizer, train_step

# Encoder sizes of the paper's scale (a ViT-small-like base and a ViT-base-like large), and emg2pose's own TDS
# featurizer for the supervised baseline (it has one size: it does not grow with the Transformer's).
PAPER = {
    "paper-base": {"encoder.width": 256, "encoder.depth": 6, "encoder.heads": 4,
                   "tds.width": 256, "tds.decoder_hidden": 512},
    "paper-large": {"encoder.width": 768, "encoder.depth": 12, "encoder.heads": 12},
}
# --quick: stand-ins with the same rows, small enough for tests.
QUICK = {
    "paper-base": {"encoder.width": 32, "encoder.depth": 2, "encoder.heads": 2, "tds.width": 32},
    "paper-large": {"encoder.width": 64, "encoder.depth": 2, "encoder.heads": 4},
}


METHODS = ("emg_mae", "cpep", "tds_regression")  # whose steps are measured: their configuration rules apply


@dataclass(frozen=True)
class Model:
    role: str   # default, paper-base, paper-large
    cfg: dict


def models(cfg: dict, overrides: dict, quick: bool) -> list[Model]:
    """The default model (the configuration as given) and the paper sizes, smallest first (so that on a CPU
    each row's peak resident memory shows as an increase over the rows before it)."""
    sizes = QUICK if quick else PAPER
    chosen = [Model("default", cfg)] + [Model(role, plugins.resolve(overrides, size)) for role, size in sizes.items()]
    for model in chosen:
        for method in METHODS:
            plugins.get("method", method).validate(model.cfg)
    return chosen


def encoder_size(cfg: dict) -> str:
    e = cfg["encoder"]
    return f"{e['width']}x{e['depth']} h{e['heads']}"


def _mae(cfg, data, device, batch):
    from cpep.pretraining import make_mae
    mae = make_mae("emg", cfg, data).to(device)
    shift = cfg["emg"]["rotation_augment"]
    return mae, lambda b: mae(random_channel_roll(b["emg"], shift))[0], None


def _aligned(cfg, data, device):
    from cpep.pretraining import Aligned
    model = Aligned(cfg, data, plugins.get("objective", cfg["align"]["objective"])).to(device)
    model.pose.requires_grad_(False)
    return model


def _align(cfg, data, device, batch):
    """The alignment step as the stage takes it: the frozen pose encoder's embeddings computed once and looked up
    by the batch's window indices."""
    from cpep.pretraining import alignment_loss
    model = _aligned(cfg, data, device)
    model.pose.eval()
    with torch.no_grad(), autocast(device):
        cache = torch.zeros(int(batch["index"].max()) + 1, model.pose.width, device=device)
        cache[batch["index"]] = model.pose(batch["pose"]).float()
    return model, alignment_loss(model, cfg["emg"]["rotation_augment"], cache), model.temperature.clamp_


def _align_uncached(cfg, data, device, batch):
    """The same step running the frozen pose encoder on every batch (the loss and gradients are the same)."""
    from cpep.pretraining import alignment_loss
    model = _aligned(cfg, data, device)
    return model, alignment_loss(model, cfg["emg"]["rotation_augment"]), model.temperature.clamp_


def _supervised(cfg, data, device, batch):
    from bench.methods.tds_regression import build
    model = build(cfg, data).to(device)
    shift = cfg["emg"]["rotation_augment"]
    return model, lambda b: F.l1_loss(model(random_channel_roll(b["emg"], shift)).float(),
                                      model.target(b["pose"])), None


@dataclass(frozen=True)
class Step:
    kind: str    # what the projection calls it: mae, align, supervised (others are shown, not projected)
    what: str
    build: Callable
    roles: tuple[str, ...]  # the model sizes it is measured at
    compiled: bool = False  # torch.compile, as train.compile=true trains (CUDA graphs on CUDA)

    def size(self, cfg: dict) -> str:
        if self.kind == "supervised":
            return f"TDS {cfg['tds']['width']}"
        return encoder_size(cfg)


ALL = ("default", "paper-base", "paper-large")
PAPER_SIZES = ("paper-base", "paper-large")
STEPS = (
    Step("mae", "EMG-MAE step", _mae, ALL),
    Step("align", "align step ({objective}, pose embeddings cached)", _align, ALL),
    Step("align_uncached", "align step ({objective}, pose encoder run each step)", _align_uncached, ALL),
    Step("supervised", "supervised step (emg2pose)", _supervised, ("default", "paper-base")),
)
# On CUDA only: compiling takes minutes on a CPU, and CUDA graphs are what it is for.
COMPILED = (
    Step("mae_compiled", "EMG-MAE step, compiled + CUDA graphs", _mae, PAPER_SIZES, compiled=True),
    Step("align_compiled", "align step ({objective}, pose embeddings cached), compiled + CUDA graphs", _align,
         PAPER_SIZES, compiled=True),
)


def steps_for(device: torch.device) -> tuple[Step, ...]:
    return STEPS + (COMPILED if device.type == "cuda" else ())


def trainer(model: torch.nn.Module, loss_fn: Callable, after_step: Callable | None, batch: dict,
            device: torch.device, compiled: bool = False) -> Callable[[], None]:
    """One training step as cpep.nn.train.fit takes it (fused AdamW on CUDA), on the same batch each time."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(model, params, weight_decay=0.05, lr=1e-4)
    model.train()
    graphs = compiled and compile_forward(model, device)
    return lambda: train_step(loss_fn, batch, params, optimizer, device, 1.0, graphs, after_step)


def align_step(cfg: dict, data, batch: dict, device: torch.device) -> Callable[[], None]:
    """The default alignment step, for measurements beside other load."""
    return trainer(*_align(cfg, data, device, batch), batch, device)


# A compiled step's first calls compile it, record its CUDA graphs, then replay them: none of them is timed.
COMPILED_WARMUP = 5


def measure(step: Step, model: Model, data, batch: dict, device: torch.device, plan: timing.Plan,
            roofline_flop_s: float, eager_flops: int | None = None) -> dict:
    """A step's row. A compiled step does the FLOPs of its eager twin (`eager_flops`), which the counter cannot
    see inside compiled code."""
    with timing.PeakMemory(device) as memory:
        train = trainer(*step.build(model.cfg, data, device, batch), batch, device, step.compiled)
        if step.compiled:
            for _ in range(COMPILED_WARMUP):
                train()
            flops, first_s = eager_flops, None
        else:
            flops, first_s = timing.counted(train, device)  # the first step: counted, and not timed
        t = timing.median_rate(train, len(batch["emg"]), device, plan, first_s)
    del train
    gc.collect()
    r = table.row("step", step.what.format(objective=model.cfg["align"]["objective"]), t.rate, "windows/s",
                  kind=step.kind, model=model.role, size=step.size(model.cfg), batch=len(batch["emg"]),
                  units_per_repeat=t.units, repeats=t.repeats, peak_memory_mb=memory.bytes / 2**20)
    return table.with_flops(r, flops, roofline_flop_s)
