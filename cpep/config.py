"""The configuration tree: defaults, `key=value` overrides checked against them, and stable hashing.

Choices the paper leaves open (window length, encoder size, linear-probe optimiser) are set here and can be
changed with `--set`. Defaults are sized for the built-in synthetic data on a laptop CPU; the `paper` suite
raises the epochs to the paper's schedule.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib

import torch

from cpep.errors import ConfigError

DEFAULTS: dict = {
    "data": {
        "name": "synthetic",       # "synthetic" (generated once, cached) or "emg2pose" (data.root required)
        "root": "",
        "vocab": "",               # gesture table: built-in name or a .toml path; "" = the dataset's own
        "window": 2000,            # samples at 2 kHz (1 s)
        "stride": 1000,
        "pose_decimation": 10,     # pose is averaged to 200 Hz; tokens still span the same time as EMG tokens
        "in_memory_gb": 4.0,       # selections smaller than this are read once and kept in memory
        "synth": {"seed": 0, "users": 8, "test_users": 2, "val_users": 0, "stage_seconds": 8.0, "difficulty": 0.5},
    },
    "encoder": {"width": 128, "depth": 4, "heads": 4, "mlp_ratio": 2.0, "pooling": "cls"},
    "emg": {"patch": 200,          # samples per EMG token (100 ms)
            "bin": 10,             # tokens embed the log-power envelope in bins of this many samples; 1 = raw

            "rotation_augment": 1},  # training rolls the electrode ring by up to this many channels
    "pose": {"patch": 200},        # samples per pose token, before decimation
    "mae": {"epochs": 40, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 2.0,
            "mask_ratio": 0.5, "decoder_width": 64, "decoder_depth": 1},
    "align": {"epochs": 40, "batch_size": 256, "lr": 5e-4, "weight_decay": 0.05, "warmup_epochs": 2.0,
              "temperature": 0.02, "learn_temperature": True,
              "emg_init": "mae",     # "mae": start from the EMG-MAE encoder; "random": from scratch
              "train_emg": True,     # False: EMG encoder frozen, only the projection head trains
              "train_pose": False},  # True: joint training, the pose encoder is not frozen
    "supervised": {"epochs": 40, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 2.0},
    "tds": {"width": 64, "features": 64, "decoder_hidden": 256},  # emg2pose: width 256, hidden 512
    "eval": {"k": 10, "lp_weight_decay": 1e-3, "lp_max_iter": 200},
    "train": {"device": "auto", "workers": 0, "checkpoint_every": 1},
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
    return value


def set_key(cfg: dict, key: str, value) -> None:
    """Set a dotted key that exists in DEFAULTS, with a value of the default's type."""
    node, default = cfg, DEFAULTS
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


def resolve(*overrides: dict) -> dict:
    """DEFAULTS with each {dotted.key: value} mapping applied in order."""
    cfg = copy.deepcopy(DEFAULTS)
    for mapping in overrides:
        for key, value in mapping.items():
            set_key(cfg, key, value)
    validate(cfg)
    return cfg


def validate(cfg: dict) -> None:
    d = cfg["data"]
    if d["name"] not in ("synthetic", "emg2pose"):
        raise ConfigError(f"data.name must be 'synthetic' or 'emg2pose', not {d['name']!r}")
    if d["name"] == "emg2pose" and not d["root"]:
        raise ConfigError("the emg2pose dataset needs its location: --data-root DIR")
    for section, patch in (("emg", cfg["emg"]["patch"]), ("pose", cfg["pose"]["patch"])):
        if patch <= 0 or d["window"] % patch:
            raise ConfigError(f"{section}.patch ({patch}) must divide data.window ({d['window']})")
    if cfg["emg"]["bin"] < 1 or cfg["emg"]["patch"] % cfg["emg"]["bin"]:
        raise ConfigError(f"emg.bin ({cfg['emg']['bin']}) must divide emg.patch ({cfg['emg']['patch']})")
    if cfg["pose"]["patch"] % d["pose_decimation"]:
        raise ConfigError(f"pose.patch ({cfg['pose']['patch']}) must be a multiple of data.pose_decimation")
    if d["stride"] <= 0:
        raise ConfigError("data.stride must be positive")
    device = cfg["train"]["device"]
    if device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, not {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for, but CUDA is not available here")
    if cfg["encoder"]["pooling"] not in ("cls", "mean"):
        raise ConfigError("encoder.pooling must be 'cls' or 'mean'")
    if cfg["encoder"]["width"] % cfg["encoder"]["heads"]:
        raise ConfigError("encoder.width must be a multiple of encoder.heads")
    if cfg["align"]["emg_init"] not in ("mae", "random"):
        raise ConfigError("align.emg_init must be 'mae' or 'random'")
    if not 0.0 < cfg["mae"]["mask_ratio"] < 1.0:
        raise ConfigError("mae.mask_ratio must be in (0, 1)")
    for section in ("mae", "align", "supervised"):
        if cfg[section]["epochs"] < 1 or cfg[section]["batch_size"] < 2:
            raise ConfigError(f"{section}.epochs must be >= 1 and {section}.batch_size >= 2")


def get(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def digest(obj) -> str:
    """A short, stable hash of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
