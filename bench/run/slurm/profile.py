"""SLURM cluster profiles: TOML files of submitit parameters (partition, account, time limit...), by name from
slurm/profiles or by path."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
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
# Given to the executor when it is made, not later (a submitit rule).
INIT_KEYS = ("slurm_max_num_timeout",)


@dataclass(frozen=True)
class Profile:
    name: str
    params: dict  # submitit parameters


def profile_dirs() -> list[Path]:
    """slurm/profiles of the working directory, then of the checkout this package runs from (if it is one)."""
    return list(dict.fromkeys([Path.cwd() / "slurm" / "profiles", CHECKOUT_PROFILES]))


def load_profile(name: str | None) -> Profile:
    """A profile by name (slurm/profiles/NAME.toml) or by path to a TOML file; bad input is a UserError."""
    if not name:
        available = ", ".join(names(profile_dirs())) or "none"
        raise UserError(f"--executor slurm needs --profile NAME (profiles: {available}) or a TOML file")
    name, raw, path = load_toml(name, profile_dirs(), "SLURM profile")
    unknown = sorted(set(raw) - set(PROFILE_KEYS))
    if unknown:
        raise UserError(f"SLURM profile {path.name}: unknown key(s) {', '.join(unknown)} "
                        f"(known: {', '.join(PROFILE_KEYS)})")
    params = {}
    for key, value in raw.items():
        types, param = PROFILE_KEYS[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise UserError(f"SLURM profile {path.name}: {key} = {value!r} has the wrong type")
        params[param] = value
    return Profile(name, params)


def check_available() -> None:
    for tool in ("sbatch", "squeue", "srun"):
        if shutil.which(tool) is None:
            raise UserError(f"--executor slurm: {tool} not found on PATH (run this on a SLURM login node, or start "
                            f"the local cluster with slurm/cluster.sh start)")
