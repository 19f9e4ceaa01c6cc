"""The smoke suite as a user runs it (default configuration): CPEP learns, above chance on every metric."""

from __future__ import annotations

import subprocess

from test_cli import CLI, records

CHANCE = 1 / 4  # 4 in-distribution and 4 unseen classes; balanced accuracy
LIMIT_S = 1800  # generous: the suite must not time out on a heavily loaded machine


def test_smoke_suite_beats_chance(tmp_path):
    out = subprocess.run([*CLI, "run", "--suite", "smoke", "--results-dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=LIMIT_S)
    assert out.returncode == 0, out.stdout + out.stderr
    recs = records(tmp_path)
    cpep, pose = recs["cpep/seed-0"]["metrics"], recs["pose_mae/seed-0"]["metrics"]
    assert all(value > CHANCE + 0.1 for value in cpep.values()), cpep
    assert cpep["lp_id"] > 0.6 and cpep["zs_id"] > 0.6
    assert pose["lp_id"] >= cpep["lp_id"]  # the pose-input upper bound
