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


KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "DNNL_MAX_CPU_ISA")  # CPU kernel levels


def environment(device, compiled: bool = False) -> dict:
    """What a stage ran on that changes rounding, not the experiment (cpep.config.ENVIRONMENT): the device and its
    precision, the torch threads in use (cpep.threads) beside the CPUs allotted, torch's version, the CPU kernel
    level torch dispatches to (and the variables that cap it, where set), and whether the model was compiled."""
    import torch

    from cpep.threads import available_cpus
    env = {"threads": torch.get_num_threads(), "cpus_allotted": available_cpus(), "torch": torch.__version__,
           "compiled": compiled}
    if device.type == "cuda":
        return {"device": str(device), "name": torch.cuda.get_device_name(device), "precision": precision(device),
                "cuda": torch.version.cuda, **env}
    kernels = {name: os.environ[name] for name in KERNEL_VARIABLES if name in os.environ}
    return {"device": "cpu", "name": platform.processor() or platform.machine(), "precision": precision(device),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), **({"kernels": kernels} if kernels else {}),
            **env}


def signature(env: dict | None) -> str:
    """A stage environment in one line: what two seeds of one table are compared by."""
    if not env:
        return "unknown"
    kernels = ",".join(f"{k}={v}" for k, v in sorted((env.get("kernels") or {}).items()))
    parts = [env.get("device"), env.get("precision"), f"{env.get('threads')} threads",
             env.get("cpu_capability") or env.get("name"), f"torch {env.get('torch')}", kernels,
             "compiled" if env.get("compiled") else ""]
    return ", ".join(str(p) for p in parts if p)


def collect(device) -> dict:
    return {
        "versions": {name: _version(name) for name in PACKAGES} | {"python": platform.python_version()},
        "git": git_state(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        **environment(device),
    }
