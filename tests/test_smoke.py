"""The smoke suite as a user runs it (default configuration, on the CPU): CPEP learns, the floor and ceiling
bracket it, and the numbers match tests/golden/smoke.json: the generated data exactly, the untrained floor and
ceiling tightly, the trained metrics within what changing the training environment (torch threads, CPU kernel
level) was measured to move them by (`cpep-bench spread`).

CPEP_SMOKE_THREADS=2 runs it with two torch threads instead of one; with ATEN_CPU_CAPABILITY=avx2
MKL_ENABLE_INSTRUCTIONS=AVX2 DNNL_MAX_CPU_ISA=AVX2 it trains with AVX2 kernels. It holds in each of these."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import torch
from test_cli import CLI, records

from bench import plugins
from bench.run.store import Store

CHANCE = 1 / 4  # 4 in-distribution and 4 unseen classes; balanced accuracy
GOLDEN = Path(__file__).parent / "golden" / "smoke.json"
# One torch thread by default: the test then does not stall when another process holds a core (two OpenMP threads
# that wait for each other; README, Threads).
THREADS = int(os.environ.get("CPEP_SMOKE_THREADS", "1"))


def data_summary(results: Path, run_config: dict) -> dict:
    """What the smoke runs trained on: metadata.csv's digest, each selection's recordings, windows and windows per
    class, and the normalisation statistics measured on the training recordings."""
    data = plugins.get("dataset", "synthetic").open(run_config, Store(results))
    stats = {k: [float(f"{x:.7g}") for x in v] for k, v in sorted(data.stats.items())}
    return {"metadata_sha256": hashlib.sha256((data.root / "metadata.csv").read_bytes()).hexdigest(),
            "selections": data.check_files(), "normalisation": stats}


def test_smoke_suite_learns_and_matches_its_golden_values(tmp_path):
    # Minutes on 2 free cores; well over test_cli's half-hour limit on 2 cores that other processes keep busy.
    subprocess.run([*CLI, "run", "--suite", "smoke", "--runs-dir", str(tmp_path), "--device", "cpu", "--set",
                    f"train.threads={THREADS}"], check=True, timeout=4 * 3600)
    recs = records(tmp_path)
    assert {s["environment"]["threads"] for r in recs.values() for s in r["stages"]} == {THREADS}
    measured = {name.split("/")[0]: rec["metrics"] for name, rec in recs.items()}
    cpep, pose, floor, ceiling = (measured[v] for v in ("cpep", "pose_mae", "emg_log_power", "pose_features"))
    assert all(value > CHANCE for value in cpep.values()), cpep  # it learns: above chance on every metric
    assert floor["lp_id"] < cpep["lp_id"] < min(pose["lp_id"], ceiling["lp_id"])  # between the floor and ceilings

    golden = json.loads(GOLDEN.read_text())
    here = f"{THREADS} thread(s), torch CPU kernels {torch.backends.cpu.get_cpu_capability()}"
    data = data_summary(tmp_path, recs["cpep/seed-0"]["config"])
    expected = golden["data"]
    assert data["metadata_sha256"] == expected["metadata_sha256"], "the generated metadata.csv changed"
    assert data["selections"] == expected["selections"], json.dumps(data["selections"])
    for key, values in expected["normalisation"].items():
        np.testing.assert_allclose(data["normalisation"][key], values, rtol=1e-6, err_msg=key)

    moved = []
    for group in ("untrained", "trained"):
        tolerance = golden[group]["tolerance"]
        for variant, values in golden[group]["metrics"].items():
            for metric, value in values.items():
                if abs(measured[variant][metric] - value) > tolerance:
                    moved.append(f"{variant} {metric}: {value:.3f} -> {measured[variant][metric]:.3f} "
                                 f"(tolerance {tolerance})")
    rounded = {v: {m: round(x, 4) for m, x in sorted(values.items()) if x is not None}
               for v, values in measured.items()}
    assert not moved, (f"smoke metrics moved beyond their tolerance in {GOLDEN.name} ({here}): {'; '.join(moved)}. "
                       f"If the change is intended, write the new values there with the reason:\n"
                       f"{json.dumps(rounded, indent=1)}")
