"""What the cluster offers, and a profile's requests checked against it before anything is submitted.

sbatch accepts a job that no node of its partition can ever hold (more CPUs than any node has, say): it pends
forever with the reason PartitionConfig. So each job kind's request (CPUs, memory, GPUs, time) is checked against
the largest node of its partition, as `scontrol show partition` and `scontrol show node` describe them, and a
request no node can satisfy is refused in one line.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from bench.run.slurm.profile import Profile
from cpep.errors import UserError

# squeue reasons of a pending job that waiting does not cure: it can never start as it is.
NEVER = ("PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "InvalidAccount", "InvalidQOS",
         "BadConstraints", "DependencyNeverSatisfied", "QOSMaxWallDurationPerJobLimit")


def never_starts(reason: str) -> bool:
    """Whether a pending job's squeue reason says it can never start ("ReqNodeNotAvail" when no node is named as
    unavailable: none could ever hold it)."""
    if reason.startswith("ReqNodeNotAvail"):
        return reason.rstrip().endswith("UnavailableNodes:")
    return reason.split(",")[0].strip() in NEVER


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    cpus: int           # of its largest node, within MaxCPUsPerNode
    mem_mb: int         # of its largest node, within MaxMemPerNode
    gpus: int           # of its node with the most
    max_minutes: float  # MaxTime; inf when unlimited


def _fields(line: str) -> dict[str, str]:
    """`scontrol -o` output: Key=Value pairs separated by spaces (a value has no space, OS= aside)."""
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))


def minutes(text: str) -> float:
    """A SLURM time limit in minutes: UNLIMITED, M, M:S, H:M:S, D-H, D-H:M or D-H:M:S."""
    if text in ("UNLIMITED", "INFINITE", "NONE", ""):
        return float("inf")
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:
        h, m, s = (parts + [0, 0])[:3]
    else:
        h, m, s = {1: (0, parts[0], 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]
    return int(days or 0) * 1440 + h * 60 + m + s / 60


def gpus_of(gres: str) -> int:
    """The GPUs of a node's Gres: "gpu:a100:4(S:0-1),gpu:2" -> 6; "(null)" -> 0."""
    found = 0
    for item in re.sub(r"\([^)]*\)", "", gres).split(","):
        parts = item.split(":")
        if parts[0] == "gpu":
            found += int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return found


def _scontrol(*args: str) -> list[str]:
    try:
        out = subprocess.run(["scontrol", "-o", "show", *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UserError(f"--executor slurm: scontrol: {e}") from None
    if out.returncode != 0:
        raise UserError(f"--executor slurm: scontrol show {args[0]}: {out.stderr.strip() or out.returncode}")
    return [line for line in out.stdout.splitlines() if line.strip()]


def partitions() -> dict[str, Partition]:
    nodes = [_fields(line) for line in _scontrol("node")]
    found = {}
    for line in _scontrol("partition"):
        p = _fields(line)
        name = p["PartitionName"]
        mine = [n for n in nodes if name in n.get("Partitions", "").split(",")]
        cap = (lambda key, value: value if p.get(key, "UNLIMITED") == "UNLIMITED" else min(value, int(p[key])))
        found[name] = Partition(
            name, p.get("Default") == "YES",
            cap("MaxCPUsPerNode", max((int(n.get("CPUTot", 0)) for n in mine), default=0)),
            cap("MaxMemPerNode", max((int(n.get("RealMemory", 0)) for n in mine), default=0)),
            max((gpus_of(n.get("Gres", "")) for n in mine), default=0), minutes(p.get("MaxTime", "UNLIMITED")))
    return found


def check(profile: Profile, kinds: list[str]) -> None:
    """UserError, one line, for the first job kind whose request no node of its partition can satisfy; `kinds`:
    the kinds the profile's [kinds.*] tables name, checked beside every job's defaults."""
    offered = partitions()
    for kind in ["", *kinds]:
        params = profile.for_kind(kind) if kind else profile.params
        where = f"SLURM profile {profile.name}" + (f" [kinds.{kind}]" if kind else "")
        name = params.get("slurm_partition") or next((p.name for p in offered.values() if p.default), None)
        if name is None:
            raise UserError(f"{where}: no partition named and the cluster has no default one")
        if name not in offered:
            raise UserError(f"{where}: partition {name!r} does not exist (partitions: {', '.join(sorted(offered))})")
        part = offered[name]
        asks = [("cpus_per_task", params.get("cpus_per_task", 1), part.cpus, "CPUs"),
                ("mem_gb", params.get("mem_gb", 0), part.mem_mb / 1024, "GB of memory"),
                ("gpus_per_task", params.get("slurm_gpus_per_task", 0), part.gpus, "GPUs"),
                ("timeout_min", params.get("timeout_min", 0), part.max_minutes, "minutes (MaxTime)")]
        for key, wanted, has, unit in asks:
            if wanted > has:
                most = f"{has:g}" if has != float("inf") else "unlimited"
                node = "allows at most" if key == "timeout_min" else "offers at most, on its largest node,"
                raise UserError(f"{where}: {key} = {wanted:g}, but partition {name} {node} {most} {unit}: its jobs "
                                f"could never start")
