"""Where and with what a result was computed: package versions, git commit, machine, device."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("cpep-bench", "torch", "timm", "numpy", "scipy", "h5py", "pandas", "pyarrow", "submitit")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_state() -> dict:
    """The commit of the cpep-bench checkout the code runs from, and whether it had local changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown (not a git checkout)", "dirty": None}


def precision(device) -> str:
    """The numeric precision training runs at on a device (cpep.nn.train.autocast): part of every stage key."""
    return "bf16" if device.type == "cuda" else "float32"


def describe_device(device) -> dict:
    """The device, its precision, and the torch threads in use (cpep.threads) beside the CPUs allotted."""
    import torch

    from cpep.threads import available_cpus
    threads = {"threads": torch.get_num_threads(), "cpus_allotted": available_cpus()}
    if device.type == "cuda":
        return {"device": str(device), "name": torch.cuda.get_device_name(device), "precision": precision(device),
                "cuda": torch.version.cuda, **threads}
    return {"device": "cpu", "name": platform.processor() or platform.machine(), "precision": precision(device),
            **threads}


def collect(device) -> dict:
    return {
        "versions": {name: _version(name) for name in PACKAGES} | {"python": platform.python_version()},
        "git": git_state(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        **describe_device(device),
    }
