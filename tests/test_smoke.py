"""The smoke suite as a user runs it (default configuration, one thread): CPEP learns, above chance on every metric."""

from __future__ import annotations

from test_cli import cli, records

CHANCE = 1 / 4  # 4 in-distribution and 4 unseen classes; balanced accuracy


def test_smoke_suite_beats_chance(tmp_path):
    # One torch thread: the numbers then do not depend on the machine's core count, and the test does not stall
    # when another process holds a core (two OpenMP threads that wait for each other; README, Threads).
    cli("run", "--suite", "smoke", "--results-dir", tmp_path, "--set", "train.threads=1")
    recs = records(tmp_path)
    cpep, pose = recs["cpep/seed-0"]["metrics"], recs["pose_mae/seed-0"]["metrics"]
    assert all(value > CHANCE + 0.1 for value in cpep.values()), cpep
    assert cpep["lp_id"] > 0.6 and cpep["zs_id"] > 0.6
    assert pose["lp_id"] >= cpep["lp_id"]  # the pose-input upper bound
