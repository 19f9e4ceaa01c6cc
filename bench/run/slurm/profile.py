"""SLURM cluster profiles: TOML files of submitit parameters (partition, account, time limit...), by name from
slurm/profiles or by path.

A profile's top-level keys are every job's resources. A `[kinds.<stage kind>]` table gives the jobs of one stage
kind their own (`[kinds.eval]` for evaluations, which the run jobs compute too: `gpus_per_task = 0` keeps them and
the methods that train nothing off the GPUs). `stages_per_gpu = k` packs k independent stages of one level of the
stage graph into one job, side by side on its GPU and CPUs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cpep.errors import UserError
from cpep.named import load_toml, names

CHECKOUT_PROFILES = Path(__file__).resolve().parents[3] / "slurm" / "profiles"

# Profile key -> (accepted types, submitit parameter).
PROFILE_KEYS = {
    "partition": (str, "slurm_partition"),
    "account": (str, "slurm_account"),
    "qos": (str, "slurm_qos"),
    "constraint": (str, "slurm_constraint"),
    "gpus_per_task": (int, "slurm_gpus_per_task"),
    "cpus_per_task": (int, "cpus_per_task"),
    "mem_gb": ((int, float), "mem_gb"),
    "timeout_min": (int, "timeout_min"),
    "array_parallelism": (int, "slurm_array_parallelism"),
    "max_num_timeout": (int, "slurm_max_num_timeout"),
    "setup": (list, "slurm_setup"),
    "sbatch": (dict, "slurm_additional_parameters"),
}
# What a [kinds.<kind>] table may set: a job's resources.
KIND_KEYS = ("partition", "account", "qos", "constraint", "gpus_per_task", "cpus_per_task", "mem_gb", "timeout_min",
             "array_parallelism", "sbatch")
# Given to the executor when it is made, not later (a submitit rule).
INIT_KEYS = ("slurm_max_num_timeout",)


@dataclass(frozen=True)
class Profile:
    name: str
    params: dict  # submitit parameters of every job
    kinds: dict = field(default_factory=dict)  # stage kind -> its own submitit parameters, over `params`
    stages_per_gpu: int = 1

    def for_kind(self, kind: str) -> dict:
        """The submitit parameters of a job of this stage kind (run jobs: "eval")."""
        own = self.kinds.get(kind, {})
        extra = {**self.params.get("slurm_additional_parameters", {}), **own.get("slurm_additional_parameters", {})}
        merged = {**self.params, **own}
        if extra:
            merged["slurm_additional_parameters"] = extra
        return merged

    def gpus(self, kind: str) -> bool:
        return self.for_kind(kind).get("slurm_gpus_per_task", 0) > 0


def profile_dirs() -> list[Path]:
    """slurm/profiles of the working directory, then of the checkout this package runs from (if it is one)."""
    return list(dict.fromkeys([Path.cwd() / "slurm" / "profiles", CHECKOUT_PROFILES]))


def _params(raw: dict, allowed, where: str) -> dict:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(allowed)})")
    params = {}
    for key, value in raw.items():
        types, param = PROFILE_KEYS[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise UserError(f"{where}: {key} = {value!r} has the wrong type")
        if key in ("gpus_per_task", "cpus_per_task", "mem_gb", "timeout_min", "array_parallelism") and \
                value < (0 if key == "gpus_per_task" else 1):
            raise UserError(f"{where}: {key} = {value!r} is too small")
        params[param] = value
    return params


def load_profile(name: str | None) -> Profile:
    """A profile by name (slurm/profiles/NAME.toml) or by path to a TOML file; bad input is a UserError."""
    if not name:
        available = ", ".join(names(profile_dirs())) or "none"
        raise UserError(f"--executor slurm needs --profile NAME (profiles: {available}) or a TOML file")
    name, raw, path = load_toml(name, profile_dirs(), "SLURM profile")
    raw = dict(raw)
    kinds, per_gpu = raw.pop("kinds", {}), raw.pop("stages_per_gpu", 1)
    where = f"SLURM profile {path.name}"
    if not isinstance(per_gpu, int) or isinstance(per_gpu, bool) or per_gpu < 1:
        raise UserError(f"{where}: stages_per_gpu = {per_gpu!r} must be a whole number, 1 or more")
    if not isinstance(kinds, dict) or not all(isinstance(v, dict) for v in kinds.values()):
        raise UserError(f"{where}: kinds holds one table per stage kind, e.g. [kinds.eval]")
    params = _params(raw, [*PROFILE_KEYS, "kinds", "stages_per_gpu"], where)
    own = {kind: _params(table, KIND_KEYS, f"{where} [kinds.{kind}]") for kind, table in kinds.items()}
    return Profile(name, params, own, per_gpu)


def check_available() -> None:
    for tool in ("sbatch", "squeue", "srun", "scontrol"):
        if shutil.which(tool) is None:
            raise UserError(f"--executor slurm: {tool} not found on PATH (run this on a SLURM login node, or start "
                            f"the local cluster with slurm/cluster.sh start)")
