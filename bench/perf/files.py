"""Where perf's results go and how they are found again: `<runs-dir>/perf/perf-<device>-<device name>-<time>.json`
(and .csv), the device being cpu or cuda and its name the processor's or the GPU's (e.g. perf-cuda-nvidia-h200-
20261202-101500.json). `cpep-bench run --plan` quotes from the latest file of the device a sweep runs on."""

from __future__ import annotations

import re
from pathlib import Path

import torch


def name(device: torch.device, device_name: str, stamp: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-") or "unknown"
    return f"perf-{device.type}-{slug}-{stamp}"


def latest(directory: Path, device_type: str) -> Path | None:
    """The newest perf JSON file for a device type (cpu or cuda) in `directory`: names end with their time."""
    found = sorted(directory.glob(f"perf-{device_type}-*.json"), key=lambda p: p.stem[-15:])
    return found[-1] if found else None
