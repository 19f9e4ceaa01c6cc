"""How many CPUs this process may use, and torch's thread pools sized to match.

torch starts one thread per core it sees, not per CPU the process was given: in a container with a CPU quota or
a SLURM job sharing a node, that oversubscribes the allocation, and every thread waits for the others. The
allocation is the smallest of the CPU affinity mask, the cgroup CPU quota (v2 `cpu.max`, v1
`cpu.cfs_quota_us` / `cpu.cfs_period_us`, in the process's own cgroup and every cgroup above it) and SLURM's
`SLURM_CPUS_PER_TASK` / `SLURM_CPUS_ON_NODE`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
SLURM_VARIABLES = ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _quota_cpus(quota: str, period: str) -> int | None:
    """Whole CPUs of a CFS quota (at least 1: a quota of half a CPU still runs one thread); None: no limit."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:  # v1 writes -1 for no limit
        return None
    return max(1, q // p)


def _own_cgroups(proc_cgroup: Path) -> dict[str, str]:
    """The lines `id:controllers:path` of /proc/<pid>/cgroup as {controllers: path}; "" is the v2 hierarchy."""
    found = {}
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            found[parts[1]] = parts[2]
    return found


def _upwards(base: Path, path: str) -> list[Path]:
    """`base/path` and each of its parents up to `base`."""
    here = base / path.strip("/")
    dirs = [here, *here.parents]
    return dirs[:dirs.index(base) + 1] if base in dirs else [base]


def cgroup_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """Whole CPUs of the tightest CPU quota on this process's cgroup or one above it; None: no quota."""
    own = _own_cgroups(proc_cgroup)
    limits = []
    for directory in _upwards(root, own.get("", "/")):  # v2: "max 100000" or "200000 100000"
        fields = (_read(directory / "cpu.max") or "").split()
        if len(fields) == 2:
            limits.append(_quota_cpus(*fields))
    for controllers, path in own.items():  # v1: the hierarchy whose controllers include cpu
        if "cpu" not in controllers.split(","):
            continue
        for directory in _upwards(root / controllers, path):
            quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
            if quota is not None and period is not None:
                limits.append(_quota_cpus(quota, period))
    limits = [n for n in limits if n is not None]
    return min(limits) if limits else None


def slurm_cpus(environ: Mapping[str, str] = os.environ) -> int | None:
    """The CPUs SLURM gave this task (the smaller of the variables that are set); None outside a job."""
    values = []
    for name in SLURM_VARIABLES:
        text = environ.get(name, "").strip()
        if text.isdigit() and int(text) > 0:
            values.append(int(text))
    return min(values) if values else None


def affinity_cpus() -> int:
    """The CPUs the scheduler lets this process run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def available_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP,
                   environ: Mapping[str, str] = os.environ) -> int:
    """The CPUs this process may use: the smallest of its affinity, its cgroup quota and its SLURM allocation."""
    limits = [affinity_cpus(), cgroup_cpus(root, proc_cgroup), slurm_cpus(environ)]
    return max(1, min(n for n in limits if n is not None))


def use_threads(requested: int = 0) -> int:
    """Size torch's thread pools: `requested` threads, or with 0 one per CPU of the allocation. Returns the
    intra-op thread count now in use.

    The inter-op pool can be sized only before torch first uses it, so a second call leaves it as it is.
    """
    import torch

    n = requested if requested > 0 else available_cpus()
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # already started (or set) in this process
        pass
    return torch.get_num_threads()
