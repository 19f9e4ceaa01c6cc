"""`cpep-bench spread`: train a suite's runs again under several training environments (torch threads, CPU kernel
level, the GPU) and measure how far their metrics disagree, beside the spread over seeds.

Stage keys leave out the thread count and the kernel level on purpose (they do not change what is computed, only
how it is rounded), so each environment trains in its own runs directory, `<out>/<environment>/`, as a
`cpep-bench run` subprocess: the kernel level is read from environment variables when torch is imported. The
synthetic data is generated once, in the main runs directory, and each environment's `data` links to it.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench import plugins
from bench.run.provenance import KERNEL_VARIABLES, git_state, now
from bench.run.store import Store
from cpep.errors import UserError

# Torch's CPU kernels, MKL's and oneDNN's limited to AVX2, as on a machine without AVX-512 or AMX.
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"}
KERNEL_LEVELS = {"avx2": AVX2}
CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")
DEFAULT_ENVIRONMENTS = ("cpu-1t", "cpu-2t", "cpu-1t-avx2")
SPEC = re.compile(r"cpu-(?P<threads>[1-9]\d*)t(-(?P<kernels>avx2))?|cuda")
CLI = [sys.executable, "-c", "from bench.cli import main; main()"]


@dataclass
class Environment:
    name: str  # unique: a spec named twice is "<spec>.2" the second time
    device: str
    threads: int | None  # None: what `cpep-bench run` picks (the CPUs allotted)
    kernels: str = "default"
    variables: dict = field(default_factory=dict)

    def run_args(self) -> list[str]:
        threads = ["--set", f"train.threads={self.threads}"] if self.threads else []
        return ["--device", self.device, *threads]

    def process_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in KERNEL_VARIABLES}  # default kernels: none set
        return env | self.variables


def parse_environments(specs: list[str]) -> list[Environment]:
    """'cpu-<N>t' (N torch threads, default kernels), 'cpu-<N>t-avx2' (AVX2 kernels), 'cuda'."""
    found, seen = [], {}
    for spec in specs:
        m = SPEC.fullmatch(spec)
        if not m:
            raise UserError(f"unknown environment {spec!r}: use cpu-<N>t, cpu-<N>t-avx2 or cuda, e.g. cpu-2t")
        seen[spec] = seen.get(spec, 0) + 1
        name = spec if seen[spec] == 1 else f"{spec}.{seen[spec]}"
        if spec == "cuda":
            found.append(Environment(name, "cuda", None))
        else:
            kernels = m["kernels"] or "default"
            found.append(Environment(name, "cpu", int(m["threads"]), kernels, KERNEL_LEVELS.get(kernels, {})))
    if len(found) < 2:
        raise UserError("spread needs at least two environments (the same one twice measures run-to-run "
                        "determinism)")
    return found


def default_environments() -> list[str]:
    import torch
    return [*DEFAULT_ENVIRONMENTS, *(["cuda"] if torch.cuda.is_available() else [])]


def machine() -> dict:
    """The CPU model and the instruction-set flags that decide which kernels torch, MKL and oneDNN use."""
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    model = info.get("model name", platform.processor() or platform.machine())
    ident = " ".join(f"{k} {info[k]}" for k in ("cpu family", "model", "stepping") if k in info)
    flags = set(info.get("flags", "").split())
    import torch
    return {"cpu": model + (f" ({ident})" if ident else ""), "cpu_flags": [f for f in CPU_FLAGS if f in flags],
            "cores": os.cpu_count(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform()}


def kernel_capability(env: Environment) -> str:
    """The CPU kernel level torch reports when imported with this environment's variables."""
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                           env=env.process_env(), capture_output=True, text=True, timeout=300)
    return probe.stdout.strip() if probe.returncode == 0 else "unknown"


def share_data(store: Store, runs, directory: Path) -> None:
    """Generate the runs' synthetic data in `store` (once) and link `directory/data` to it."""
    for run in runs:
        plugins.get("dataset", run.dataset).root(run.config, store)
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / "data"
    if not link.exists() and not link.is_symlink():
        (store.root / "data").mkdir(parents=True, exist_ok=True)
        link.symlink_to(store.root / "data")


def train(env: Environment, run_args: list[str], directory: Path, console: Console) -> dict:
    """`cpep-bench run` in `directory` under `env`; its output goes to directory/spread.log."""
    command = [*run_args, *env.run_args(), "--runs-dir", str(directory)]
    log = directory / "spread.log"
    variables = " ".join(f"{k}={v}" for k, v in env.variables.items())
    threads = f"{env.threads} torch thread{'s' if env.threads > 1 else ''}" if env.threads else "default threads"
    console.print(f"{env.name}: training on {env.device}, {threads}, {env.kernels} kernels"
                  f"{f' ({variables})' if variables else ''}; log: {log}")
    start = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run([*CLI, *command], env=env.process_env(), stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = round(time.monotonic() - start, 1)
    console.print(f"{env.name}: {'done' if code == 0 else f'[red]failed (exit {code})[/red]'} after {seconds} s")
    return {"exit_code": code, "seconds": seconds, "log": str(log),
            "command": shlex.join(["cpep-bench", *command])}


def collect(runs, envs: list[Environment], directories: dict[str, Path]) -> list[dict]:
    """One row per (variant, metric): values[env][seed], each environment's mean over seeds, the range across
    environments (the largest over seeds), and the sd over seeds (ddof 1, averaged over environments)."""
    values: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for env in envs:
        store = Store(directories[env.name])
        for run in runs:
            rec = store.record(run)
            if not rec or rec.get("status") != "done":
                continue
            for metric, value in rec["metrics"].items():
                if value is not None:
                    values.setdefault((run.variant.name, metric), {}).setdefault(env.name, {})[run.seed] = value
    seeds = sorted({run.seed for run in runs})
    rows = []
    for (variant, metric), by_env in values.items():
        ranges = [max(v) - min(v) for v in ([by_env[e.name][s] for e in envs if s in by_env.get(e.name, {})]
                                             for s in seeds) if len(v) == len(envs)]
        sds = [float(np.std(list(v.values()), ddof=1)) for v in by_env.values() if len(v) > 1]
        rows.append({"variant": variant, "metric": metric,
                     "values": {e.name: {str(s): v for s, v in sorted(by_env.get(e.name, {}).items())} for e in envs},
                     "mean": {e.name: float(np.mean(list(by_env[e.name].values()))) if by_env.get(e.name) else None
                              for e in envs},
                     "range": max(ranges) if ranges else None,
                     "seed_sd": float(np.mean(sds)) if sds else None})
    return rows


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def show(rows: list[dict], envs: list[Environment], seeds: list[int], console: Console) -> None:
    several = len(seeds) > 1
    table = Table("variant", "metric", *(e.name for e in envs), "range", *(["seed sd"] if several else []),
                  title=f"metrics by environment (seed{'s' if several else ''} {', '.join(map(str, seeds))}"
                        f"{'; mean over seeds' if several else ''})", title_justify="left", box=None,
                  pad_edge=False)
    for r in rows:
        table.add_row(r["variant"], r["metric"], *(_fmt(r["mean"][e.name]) for e in envs), _fmt(r["range"]),
                      *([_fmt(r["seed_sd"])] if several else []))
    console.print(table)
    console.print("range: max - min across environments" + (" (the largest over seeds); seed sd: sd over seeds "
                                                             "(ddof 1) within each environment, averaged"
                                                             if several else ""), style="dim")


def write(out: Path, suite: str, result: dict) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / f"spread-{suite}.json", out / f"spread-{suite}.csv"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    names = [e["name"] for e in result["environments"]]
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "metric", *names, "range", "seed_sd", "seeds"])
        for r in result["rows"]:
            w.writerow([r["variant"], r["metric"], *(r["mean"][n] for n in names), r["range"], r["seed_sd"],
                        len(result["seeds"])])
    return csv_path, json_path


def measure(runs, run_args: list[str], envs: list[Environment], store: Store, out: Path, command: str,
            console: Console) -> bool:
    """Train `runs` under each environment, print and write the spread; False when an environment failed."""
    directories = {env.name: out / env.name for env in envs}
    environments = []
    for env in envs:
        share_data(store, runs, directories[env.name])
        outcome = train(env, run_args, directories[env.name], console)
        environments.append({"name": env.name, "device": env.device, "threads": env.threads,
                             "kernels": env.kernels, "variables": env.variables,
                             "torch_cpu_capability": kernel_capability(env),
                             "runs_dir": str(directories[env.name]), **outcome})
    seeds = sorted({run.seed for run in runs})
    rows = collect(runs, envs, directories)
    result = {"command": command, "date": now(), "machine": machine(), "git": git_state(),
              "suite": runs[0].suite, "seeds": seeds, "variants": sorted({r.variant.name for r in runs}),
              "environments": environments, "rows": rows}
    show(rows, envs, seeds, console)
    csv_path, json_path = write(out, runs[0].suite, result)
    console.print(f"written: {csv_path}, {json_path}")
    return all(e["exit_code"] == 0 for e in environments)
