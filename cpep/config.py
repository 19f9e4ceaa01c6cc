"""The configuration tree: defaults, `key=value` overrides checked against them, and stable hashing.

Choices the paper leaves open (window length, encoder size, linear-probe optimiser) are set here and can be
changed with `--set`. Defaults are sized for the built-in synthetic data on a laptop CPU; the `paper` suite
raises the epochs to the paper's schedule. The sections below are shared by every method; a method or dataset
plug-in adds its own sections (bench.plugins merges them), which is why the functions take the defaults.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass

from cpep.data import protocols
from cpep.errors import ConfigError

MIN_TEMPERATURE = 0.01  # a contrastive temperature is kept in [0.01, 1], as in CLIP
# Zero-shot votes sum k exact similarities (multiples of 2**-48 below 2**1) in an int64 (cpep.probes).
MAX_ZERO_SHOT_K = 1 << 14

DEFAULTS: dict = {
    "data": {
        "name": "synthetic",       # a dataset plug-in: "synthetic" (generated once, cached) or "emg2pose"
        "root": "",
        "vocab": "",               # gesture table: built-in name or a .toml path; "" = the dataset's own
        "window": 2000,            # samples at 2 kHz (1 s)
        "stride": 1000,
        "pose_decimation": 10,     # pose is averaged to 200 Hz; tokens still span the same time as EMG tokens
        "in_memory_gb": 4.0,       # selections smaller than this are copied to the training device once
        "protocol": "default",     # how recordings become windows (cpep.data.protocols): default or embridge
        "allow_missing": False,    # metadata.csv rows whose file is absent are skipped (and counted), not refused
        "fraction": 1.0,           # of the paired pre-training windows the alignment reads (FRACTIONS)
    },
    "encoder": {"width": 128, "depth": 4, "heads": 4, "mlp_ratio": 2.0},
    "embedding": {"pooling": "cls"},  # the window embedding: [CLS] output or mean of the patch outputs
    "emg": {"patch": 200,          # samples per EMG token (100 ms)
            "bin": 10,             # tokens embed the log-power envelope in bins of this many samples; 1 = raw
            "rotation_augment": 1},  # training rolls the electrode ring by up to this many channels
    "pose": {"patch": 200},        # samples per pose token, before decimation
    "mae": {"epochs": 40, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 2.0,
            "mask_ratio": 0.5, "decoder_width": 64, "decoder_depth": 1, "decoder_heads": 4},
    "supervised": {"epochs": 40, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 2.0},
    "eval": {"k": 10, "lp_weight_decay": 1e-3, "lp_max_iter": 200, "metrics": ["linear_probe", "zero_shot"]},
    # The three sources of randomness of a run, each the run seed when -1 (unset): model initialisation, data order
    # (batch order, masks, augmentations, the probes' draws) and data (which synthetic users exist with
    # data.synth.seed_per_run; which windows data.fraction keeps). Setting one varies it alone across runs.
    "seeds": {"init": -1, "order": -1, "data": -1},
    "train": {"device": "auto", "workers": 0, "checkpoint_every": 1,
              "threads": 0,          # torch threads; 0 = one per CPU this process is allotted (cpep.threads)
              "compile": False},     # torch.compile the model trained (CUDA graphs on a GPU when shapes are static)
}


def _parse_value(text: str):
    """A TOML literal (5, 1e-3, true, "x", [1, 2]) or, failing that, the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _check_type(key: str, value, default):
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} takes true or false, not {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} takes a number, not {value!r}")
        value = float(value)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} takes a whole number, not {value!r}")
    elif isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{key} takes a string, not {value!r}")
    elif isinstance(default, list) and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{key} takes a list of names, e.g. [\"a\", \"b\"], not {value!r}")
    return value


def set_key(cfg: dict, key: str, value, defaults: dict = DEFAULTS) -> None:
    """Set a dotted key that exists in `defaults`, with a value of the default's type."""
    node, default = cfg, defaults
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(default.get(part), dict):
            raise ConfigError(f"unknown configuration key {key!r}")
        node, default = node[part], default[part]
    leaf = parts[-1]
    if leaf not in default or isinstance(default[leaf], dict):
        raise ConfigError(f"unknown configuration key {key!r}")
    node[leaf] = _check_type(key, value, default[leaf])


def parse_assignment(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise ConfigError(f"--set takes key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), _parse_value(value.strip())


def resolve(*overrides: dict, defaults: dict = DEFAULTS) -> dict:
    """`defaults` with each {dotted.key: value} mapping applied in order, checked by `validate`. The keys a
    data.protocol preset sets come between the defaults and the overrides: an override of one of them wins."""
    def apply(*mappings):
        cfg = copy.deepcopy(defaults)
        for mapping in mappings:
            for key, value in mapping.items():
                set_key(cfg, key, value, defaults)
        return cfg
    cfg = apply(*overrides)
    preset = protocols.get(cfg["data"]["protocol"]).preset()
    if preset:
        cfg = apply(preset, *overrides)
    validate(cfg)
    return cfg


def merge(base: dict, extra: dict, origin: str) -> dict:
    """`base` with the sections and keys of `extra` added; a key both define differently is a ConfigError."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, origin)
        elif key in out and out[key] != value:
            raise ConfigError(f"{origin} redefines the default of {key!r}")
        else:
            out[key] = copy.deepcopy(value)
    return out


# The range of every numeric key: checked before the combinations below, some of which divide by these values.
BOUNDS = {
    "data.window": "> 0", "data.stride": "> 0", "data.pose_decimation": "> 0", "data.in_memory_gb": ">= 0",
    "data.fraction": "> 0",
    "encoder.width": "> 0", "encoder.depth": "> 0", "encoder.heads": "> 0", "encoder.mlp_ratio": "> 0",
    "emg.patch": "> 0", "emg.bin": "> 0", "emg.rotation_augment": ">= 0", "pose.patch": "> 0",
    "mae.epochs": "> 0", "mae.batch_size": ">= 2", "mae.lr": "> 0", "mae.weight_decay": ">= 0",
    "mae.warmup_epochs": ">= 0", "mae.mask_ratio": "> 0", "mae.decoder_width": "> 0", "mae.decoder_depth": "> 0",
    "mae.decoder_heads": "> 0",
    "supervised.epochs": "> 0", "supervised.batch_size": ">= 2", "supervised.lr": "> 0",
    "supervised.weight_decay": ">= 0", "supervised.warmup_epochs": ">= 0",
    "eval.k": "> 0", "eval.lp_weight_decay": ">= 0", "eval.lp_max_iter": "> 0",
    "seeds.init": ">= -1", "seeds.order": ">= -1", "seeds.data": ">= -1",
    "train.workers": ">= 0", "train.checkpoint_every": "> 0", "train.threads": ">= 0",
}


FRACTIONS = (0.1, 0.2, 0.4, 1.0)  # data.fraction: the points of the data-efficiency curve


@dataclass(frozen=True)
class Seeds:
    """A run's seeds, resolved; `explicit` when any was set, which (alone) changes how training draws them."""
    init: int
    order: int
    data: int
    explicit: bool = False

    def key(self) -> dict:
        return {"init": self.init, "order": self.order, "data": self.data}


def seeds(cfg: dict, run_seed: int) -> Seeds:
    """The init, order and data seeds of run seed `run_seed`: each the run seed unless set in `seeds`."""
    s = cfg["seeds"]
    return Seeds(*(run_seed if s[k] == -1 else s[k] for k in ("init", "order", "data")),
                 explicit=any(v != -1 for v in s.values()))


def check_bounds(cfg: dict, bounds: dict[str, str]) -> None:
    """Raise ConfigError for the first key outside its bound: "> 0", ">= 0", ">= 2"..."""
    for key, bound in bounds.items():
        value, (op, limit) = get(cfg, key), bound.split()
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, not {value}")
        if not (value > float(limit) if op == ">" else value >= float(limit)):
            raise ConfigError(f"{key} must be {bound}, not {value}")


def validate(cfg: dict) -> None:
    """Ranges and the combinations every method shares; plug-ins check their own (bench.plugins)."""
    check_bounds(cfg, BOUNDS)
    d = cfg["data"]
    for section, patch in (("emg", cfg["emg"]["patch"]), ("pose", cfg["pose"]["patch"])):
        if d["window"] % patch:
            raise ConfigError(f"{section}.patch ({patch}) must divide data.window ({d['window']})")
    if cfg["emg"]["patch"] % cfg["emg"]["bin"]:
        raise ConfigError(f"emg.bin ({cfg['emg']['bin']}) must divide emg.patch ({cfg['emg']['patch']})")
    if cfg["pose"]["patch"] % d["pose_decimation"]:
        raise ConfigError(f"pose.patch ({cfg['pose']['patch']}) must be a multiple of data.pose_decimation")
    if d["fraction"] not in FRACTIONS:
        raise ConfigError(f"data.fraction must be one of {', '.join(map(str, FRACTIONS))}, not {d['fraction']}")
    if cfg["eval"]["k"] > MAX_ZERO_SHOT_K:
        raise ConfigError(f"eval.k must be at most {MAX_ZERO_SHOT_K}, not {cfg['eval']['k']}")
    device = cfg["train"]["device"]
    if device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, not {device!r}")
    if device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} was asked for, but CUDA is not available here")
    if cfg["embedding"]["pooling"] not in ("cls", "mean"):
        raise ConfigError("embedding.pooling must be 'cls' or 'mean'")
    e, m = cfg["encoder"], cfg["mae"]
    if e["width"] % e["heads"] or e["width"] % 2:
        raise ConfigError(f"encoder.width ({e['width']}) must be even and a multiple of encoder.heads ({e['heads']})")
    if m["decoder_width"] % m["decoder_heads"] or m["decoder_width"] % 2:
        raise ConfigError(f"mae.decoder_width ({m['decoder_width']}) must be even and a multiple of "
                          f"mae.decoder_heads ({m['decoder_heads']})")
    if not 0.0 < m["mask_ratio"] < 1.0:
        raise ConfigError("mae.mask_ratio must be in (0, 1)")
    for section in ("emg", "pose"):
        patches = d["window"] // cfg[section]["patch"]
        if max(1, round(patches * (1.0 - m["mask_ratio"]))) >= patches:
            raise ConfigError(f"mae.mask_ratio {m['mask_ratio']} masks none of a window's {patches} "
                              f"{section} patches: use more patches (a smaller {section}.patch) or a higher ratio")


def get(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def digest(obj) -> str:
    """A short, stable hash of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
