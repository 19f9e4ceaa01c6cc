"""The smoke suite as a user runs it (default configuration, on the CPU, one thread): CPEP learns, the floor and
ceiling bracket it, and every number matches the golden values written down in tests/golden/smoke.json."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import cli, records

CHANCE = 1 / 4  # 4 in-distribution and 4 unseen classes; balanced accuracy
GOLDEN = Path(__file__).parent / "golden" / "smoke.json"


def test_smoke_suite_learns_and_matches_its_golden_values(tmp_path):
    # One torch thread on the CPU: the numbers then depend neither on the machine's core count nor on a GPU, and
    # the test does not stall when another process holds a core (two OpenMP threads that wait for each other;
    # docs/performance.md, Threads).
    cli("run", "--suite", "smoke", "--runs-dir", tmp_path, "--device", "cpu", "--set", "train.threads=1")
    measured = {name.split("/")[0]: rec["metrics"] for name, rec in records(tmp_path).items()}
    cpep, pose, floor, ceiling = (measured[v] for v in ("cpep", "pose_mae", "emg_log_power", "pose_features"))
    assert all(value > CHANCE for value in cpep.values()), cpep  # it learns: above chance on every metric
    assert floor["lp_id"] < cpep["lp_id"] < min(pose["lp_id"], ceiling["lp_id"])  # between the floor and ceilings

    golden = json.loads(GOLDEN.read_text())
    tolerance = golden["tolerance"]
    moved = [f"{variant} {metric}: {golden_value:.3f} -> {measured[variant][metric]:.3f}"
             for variant, values in golden["metrics"].items() for metric, golden_value in values.items()
             if abs(measured[variant][metric] - golden_value) > tolerance]
    rounded = {v: {m: round(x, 4) for m, x in sorted(values.items()) if x is not None}
               for v, values in measured.items()}
    assert not moved, (f"smoke metrics moved by more than {tolerance} from {GOLDEN.name}: {'; '.join(moved)}. If "
                       f"the change is intended, write the new values there with the reason:\n"
                       f"{json.dumps(rounded, indent=1)}")
