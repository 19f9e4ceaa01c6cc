"""From a suite and a selection to runs, and from runs to the stages they need.

A run is one (variant, seed, dataset). Its work is a chain of stages; each stage's key hashes the part of the
configuration that determines its output together with its inputs' keys, so runs that share a stage (every
CPEP ablation shares the Pose-MAE of a seed) share one computation.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from bench.suites import Suite, Variant
from cpep import config
from cpep.data import load_vocab

DATA_KEYS = ("data.name", "data.window", "data.stride", "data.pose_decimation")
ENCODER_SHAPE = ("encoder.width", "encoder.depth", "encoder.heads", "encoder.mlp_ratio")

# What each stage's output depends on, besides the seed, the data and its inputs.
STAGE_KEYS = {
    "pose_mae": ENCODER_SHAPE + ("pose", "mae"),
    "emg_mae": ENCODER_SHAPE + ("emg", "mae"),
    "align": ("encoder", "emg", "pose", "align"),
    "poset": ("encoder", "emg", "supervised"),
    "emg2pose": ("tds", "supervised", "emg.rotation_augment"),
    "eval": ("encoder.pooling", "eval"),
}

# Each method's training stages (in order) and the stage whose model the evaluation uses.
METHOD_STAGES = {
    "cpep": ("pose_mae", "emg_mae", "align"),
    "emg_mae": ("emg_mae",),
    "pose_mae": ("pose_mae",),
    "poset": ("poset",),
    "emg2pose": ("emg2pose",),
}
# Why a method has no zero-shot number.
NO_ZERO_SHOT = {
    "emg_mae": "no pose-aligned EMG embedding",
    "pose_mae": "pose input: the zero-shot task queries with EMG",
    "poset": "no pose-aligned EMG embedding",
    "emg2pose": "no pose-aligned EMG embedding",
}


@dataclass(frozen=True)
class Stage:
    kind: str
    key: str
    seed: int
    method: str
    config: dict = field(compare=False, hash=False)
    inputs: tuple[tuple[str, str], ...] = ()  # (kind, key) of the stages whose outputs it reads

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.key}"


@dataclass(frozen=True)
class Run:
    suite: str
    variant: Variant
    seed: int
    dataset: str
    config: dict = field(compare=False, hash=False)
    stages: tuple[Stage, ...] = ()

    @property
    def key(self) -> str:
        return self.stages[-1].key

    @property
    def ident(self) -> str:
        return f"{self.variant.name}/seed-{self.seed}"


@functools.lru_cache(maxsize=None)
def _file_digest(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _data_identity(cfg: dict) -> dict:
    """The dataset a stage reads: the synthetic settings, or the content of emg2pose's metadata.csv (so the same
    path holding another dataset is another dataset)."""
    ident = {k: config.get(cfg, k) for k in DATA_KEYS}
    if cfg["data"]["name"] == "synthetic":
        ident["data.synth"] = cfg["data"]["synth"]
    else:
        csv = Path(cfg["data"]["root"]) / "metadata.csv"
        ident["metadata.csv"] = _file_digest(str(csv), csv.stat().st_mtime_ns) if csv.is_file() else str(csv)
    return ident


def _vocab_identity(name: str) -> dict:
    """The classes themselves, so that editing a vocabulary file makes its evaluations new ones."""
    vocab = load_vocab(name)
    return {"in_distribution": vocab.in_distribution, "unseen": vocab.unseen}


def stage_key(kind: str, method: str, seed: int, cfg: dict, inputs: tuple) -> str:
    parts = {k: config.get(cfg, k) for k in STAGE_KEYS[kind]}
    if kind == "eval":
        parts["method"] = method
        parts["vocab"] = _vocab_identity(cfg["data"]["vocab"])
    return config.digest({"kind": kind, "seed": seed, "data": _data_identity(cfg), "config": parts,
                          "inputs": inputs})


def stages_for(method: str, seed: int, cfg: dict) -> tuple[Stage, ...]:
    kinds = list(METHOD_STAGES[method])
    if method == "cpep" and cfg["align"]["emg_init"] == "random":
        kinds.remove("emg_mae")
    made: dict[str, Stage] = {}
    for kind in kinds:
        inputs = tuple((k, made[k].key) for k in made) if kind == "align" else ()
        made[kind] = Stage(kind, stage_key(kind, method, seed, cfg, inputs), seed, method, cfg, inputs)
    last = made[kinds[-1]]
    inputs = ((last.kind, last.key),)
    evaluation = Stage("eval", stage_key("eval", method, seed, cfg, inputs), seed, method, cfg, inputs)
    return tuple(made.values()) + (evaluation,)


def plan(suite: Suite, seeds: tuple[int, ...] | None = None, variants: list[str] | None = None,
         overrides: dict | None = None) -> list[Run]:
    """The runs of a suite: selected variants x seeds, with command-line overrides applied last."""
    chosen = [suite.variant(n) for n in variants] if variants else list(suite.variants)
    runs = []
    for variant in chosen:
        cfg = config.resolve(suite.overrides, variant.overrides, overrides or {})
        cfg["data"]["vocab"] = cfg["data"]["vocab"] or f"{cfg['data']['name']}-v1"
        for seed in seeds if seeds is not None else suite.seeds:
            runs.append(Run(suite.name, variant, seed, cfg["data"]["name"], cfg,
                            stages_for(variant.method, seed, cfg)))
    return runs


def unique_stages(runs: list[Run]) -> list[Stage]:
    """Every stage the runs need, once, each after its inputs."""
    seen: dict[str, Stage] = {}
    for run in runs:
        for stage in run.stages:
            seen.setdefault(stage.name, stage)
    return list(seen.values())
