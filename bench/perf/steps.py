"""Training steps as the stages take them: each one built by its method's own Step (`step.build(ctx)`, the
cpep.nn.train.Training that `cpep-bench run` fits), on one batch of real windows, at the default model size and at
paper sizes. A stage's inputs (align's pose_mae and emg_mae encoders) are its input stages' untrained models.

A step whose configuration is the same at two sizes (emg2pose's TDS featurizer does not grow with the
Transformer) is timed once; `same_as` says where its rate comes from at the other size.
"""

from __future__ import annotations

import functools
import gc
from dataclasses import dataclass
from typing import Callable

import torch

from bench import plugins, suites
from bench.perf import table, timing
from cpep import config
from cpep.nn.train import Batches, compile_forward, make_optimizer, train_step

# Encoder sizes of the paper's scale (a ViT-small-like base and a ViT-base-like large), and emg2pose's own TDS
# featurizer for the supervised baseline (one size for both: it does not grow with the Transformer's).
EMG2POSE_TDS = {"tds.width": 256, "tds.decoder_hidden": 512}
PAPER = {
    "paper-base": {"encoder.width": 256, "encoder.depth": 6, "encoder.heads": 4, **EMG2POSE_TDS},
    "paper-large": {"encoder.width": 768, "encoder.depth": 12, "encoder.heads": 12, **EMG2POSE_TDS},
}
# --quick: stand-ins with the same rows, small enough for tests.
QUICK = {
    "paper-base": {"encoder.width": 32, "encoder.depth": 2, "encoder.heads": 2, "tds.width": 32},
    "paper-large": {"encoder.width": 64, "encoder.depth": 2, "encoder.heads": 4, "tds.width": 32},
}
DEFAULT_SUITE = "paper"  # perf times the methods of its variants unless told which


@dataclass(frozen=True)
class Size:
    role: str   # default, paper-base, paper-large
    cfg: dict


@dataclass(frozen=True)
class Timed:
    """One row of timed steps: a method's stage at one size, built as its Step builds it (or by `build`)."""
    kind: str      # the stage's name; with _uncached or _compiled for the variants of one
    what: str
    method: str
    step: plugins.Step
    size: Size
    build: Callable
    compiled: bool = False  # torch.compile, as train.compile=true trains (CUDA graphs on CUDA)


def default_methods() -> list[str]:
    """The built-in methods of the paper suite whose stages train by gradient."""
    methods = dict.fromkeys(v.method for v in suites.load(DEFAULT_SUITE).variants)
    return [m for m in methods if any(s.build for s in plugins.get("method", m).steps(plugins.resolve({})))]


def sizes(cfg: dict, overrides: dict, quick: bool) -> list[Size]:
    """The default model (the configuration as given) and the paper sizes, smallest first (so that on a CPU
    each row's peak resident memory shows as an increase over the rows before it)."""
    return [Size("default", cfg)] + [Size(role, plugins.resolve(overrides, size))
                                     for role, size in (QUICK if quick else PAPER).items()]


def validate(methods: list[str], chosen: list[Size]) -> None:
    """Each method's rules at each size: bad settings stop here, before any data is made."""
    for size in chosen:
        for method in methods:
            plugins.get("method", method).validate(size.cfg)


def encoder_size(cfg: dict) -> str:
    e = cfg["encoder"]
    return f"{e['width']}x{e['depth']}"


def model_size(step: plugins.Step, cfg: dict) -> str:
    """What the row's model is, in a few characters."""
    if "tds" in cfg and "tds" in plugins.step_view(step, cfg):
        return f"TDS {cfg['tds']['width']}"
    return encoder_size(cfg)


def work_key(kind: str, view: dict) -> str:
    """What sets a stage's speed: the configuration it sees, less its epochs, seeds, how it runs and which data
    files (but with the windows' shape). The same for a timed step and a planned stage of one configuration."""
    cfg = config.key_config(view)
    cfg.pop("train", None)
    data = cfg.pop("data", {})
    for section in cfg.values():
        if isinstance(section, dict):
            section.pop("epochs", None)
    shape = {k: data.get(k) for k in ("name", "window", "pose_decimation")}
    return config.digest({"kind": kind, "data": shape, "config": cfg})


def plan(methods: list[str], chosen: list[Size], device: torch.device) -> tuple[list[Timed], dict]:
    """The rows to time, and {"kind@role": role} for steps whose configuration at `role` is that of an earlier
    size's (timed once)."""
    from bench.methods import cpep
    rows, seen, same_as = [], {}, {}
    for size in chosen:
        for method in methods:
            for step in plugins.get("method", method).steps(size.cfg):
                if step.build is None:
                    continue
                key = work_key(step.name, plugins.step_view(step, size.cfg))
                if key in seen:
                    if seen[key] != size.role:
                        same_as[f"{step.name}@{size.role}"] = seen[key]
                    continue
                seen[key] = size.role
                rows.append(Timed(step.name, f"{step.name} step", method, step, size, step.build))
                if step.build is cpep.build:  # the pose-embedding cache's gain, on the same step
                    rows.append(Timed(f"{step.name}_uncached", f"{step.name}, pose enc. each step", method, step,
                                      size, functools.partial(cpep.build, cache_pose=False)))
    if device.type == "cuda":  # compiling takes minutes on a CPU, and CUDA graphs are what it is for
        rows += [Timed(f"{r.kind}_compiled", f"{r.kind}, CUDA graphs", r.method, r.step, r.size, r.build, True)
                 for r in rows if r.size.role != "default" and not r.kind.endswith("_uncached")]
    return rows, same_as


class FirstWindows:
    """The opened dataset with each selection cut to its first `n` windows: a stage built on it trains on one
    batch, and computes what it computes once per stage (the frozen pose embeddings) for that batch only."""

    def __init__(self, data, n: int):
        self._data, self._n, self._cut = data, n, {}

    def selection(self, name: str):
        if name not in self._cut:
            self._cut[name] = self._data.selection(name).head(self._n)
        return self._cut[name]

    def __getattr__(self, name: str):
        return getattr(self._data, name)


def context(step: plugins.Step, method: str, cfg: dict, data, device: torch.device) -> plugins.Context:
    """The Context a stage of `method`'s `step` is built with, its inputs the untrained models of its input
    stages (built as they build them)."""
    steps = {s.name: s for s in plugins.get("method", method).steps(cfg)}
    inputs = {name: steps[name].build(context(steps[name], method, cfg, data, device)).state()
              for name in step.inputs}
    return plugins.Context(plugins.step_view(step, cfg), data, 0, device, inputs)


def trainer(training, batch: dict, device: torch.device, compiled: bool = False) -> Callable[[], None]:
    """One training step as cpep.nn.train.fit takes it (fused AdamW on CUDA), on the same batch each time."""
    model = training.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(model, params, weight_decay=0.05, lr=1e-4)
    model.train()
    graphs = compiled and compile_forward(model, device)
    return lambda: train_step(training.loss, batch, params, optimizer, device, 1.0, graphs, training.after_step)


def build(timed: Timed, data, device: torch.device) -> tuple[Callable, int]:
    """The step's trainer on the first batch of its stage's windows (fewer where the data has fewer), and that
    batch's size."""
    n = config.get(timed.size.cfg, timed.step.schedule)["batch_size"]
    training = timed.build(context(timed.step, timed.method, timed.size.cfg, FirstWindows(data, n), device))
    batch = next(Batches(training.windows, n, device, seed=0, in_memory_bytes=float("inf")).epoch(0))
    return trainer(training, batch, device, timed.compiled), len(batch["index"])


# A compiled step's first calls compile it, record its CUDA graphs, then replay them: none of them is timed.
COMPILED_WARMUP = 5


def measure(timed: Timed, data, device: torch.device, plan_: timing.Plan, roofline_flop_s: float,
            eager_flops: int | None = None) -> dict:
    """A step's row. A compiled step does the FLOPs of its eager twin (`eager_flops`), which the counter cannot
    see inside compiled code."""
    with timing.PeakMemory(device) as memory:
        train, n = build(timed, data, device)
        if timed.compiled:
            for _ in range(COMPILED_WARMUP):
                train()
            flops, first_s = eager_flops, None
        else:
            flops, first_s = timing.counted(train, device)  # the first step: counted, and not timed
        t = timing.median_rate(train, n, device, plan_, first_s)
    del train
    if device.type == "cuda":  # the next row's peak memory starts from what this one leaves
        gc.collect()
    cfg = timed.size.cfg
    r = table.row("step", timed.what, t.rate, "windows/s", kind=timed.kind, model=timed.size.role,
                  size=model_size(timed.step, cfg), batch=n, units_per_repeat=t.units, repeats=t.repeats,
                  peak_memory_mb=memory.bytes / 2**20, method=timed.method,
                  work=work_key(timed.step.name, plugins.step_view(timed.step, cfg)))
    return table.with_flops(r, flops, roofline_flop_s)

