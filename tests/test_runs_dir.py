"""One sweep per runs directory at a time, and nothing left behind by a sweep killed while writing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from conftest import tiny_args
from test_cli import CLI, assert_one_line_error, cli, records
from test_resume import wait_for

from bench.run.store import read_json
from cpep.synth.config import SynthConfig
from cpep.synth.simulator import generate

# pose_mae alone, far longer than the test lets it run.
ENDLESS_POSE_MAE = ["--suite", "smoke", "--variants", "pose_mae", *tiny_args(),
                    "--set", "mae.epochs=5000", "--set", "mae.batch_size=8"]
QUICK_POSE_MAE = ["--suite", "smoke", "--variants", "pose_mae", *tiny_args()]
SMALL_DATA = ["--set", "data.synth.users=3", "--set", "data.synth.stage_seconds=4"]


def test_a_second_run_is_refused_while_the_first_holds_the_runs_directory(make_results, tmp_path):
    results = make_results(tmp_path / "results")
    lock = results / "run.lock"
    first = subprocess.Popen([*CLI, "run", *ENDLESS_POSE_MAE, "--runs-dir", str(results)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        holder = wait_for(lambda: (read_json(lock) or {}).get("pid") == first.pid and read_json(lock), 600,
                          "the first run to name itself in run.lock")
        second = cli("run", *QUICK_POSE_MAE, "--runs-dir", results, check=False)
        assert first.poll() is None, "the first run ended before the second started: make it longer"
        assert_one_line_error(second, f"runs directory {results.resolve()} is in use by pid {first.pid} on host "
                                      f"{socket.gethostname()} since {holder['since']} (cpep-bench run --suite smoke "
                                      f"--variants pose_mae --set")
        assert "wait for it or use another --runs-dir" in second.stderr
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
        first.wait()
    assert lock.is_file()  # the killed holder could not remove it, but the kernel released its lock
    cli("run", *QUICK_POSE_MAE, "--runs-dir", results)
    assert records(results)["pose_mae/seed-0"]["status"] == "done"
    assert not lock.exists()


def test_a_run_killed_while_generating_data_leaves_nothing_behind_after_the_next(tmp_path):
    results = tmp_path / "results"
    first = subprocess.Popen([*CLI, "run", *QUICK_POSE_MAE, *SMALL_DATA, "--runs-dir", str(results)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        partial = wait_for(lambda: next((results / "data").glob(".synthetic-*"), None), 600,
                           "the first run to start generating its data")
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
        first.wait()
    assert partial.is_dir() and not list((results / "data").glob("synthetic-*")), "killed after generating"
    cli("run", *QUICK_POSE_MAE, *SMALL_DATA, "--runs-dir", results)
    left = [p.name for p in (results / "data").iterdir()]
    assert len(left) == 1 and left[0].startswith("synthetic-"), left
    assert records(results)["pose_mae/seed-0"]["status"] == "done"


def test_generating_removes_temporary_directories_of_dead_writers_on_this_host_only(tmp_path):
    out = tmp_path / "synthetic"
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".synthetic.{host}.{dead.pid}.abc123"
    live = tmp_path / f".synthetic.{host}.{os.getpid()}.def456"
    elsewhere = tmp_path / f".synthetic.not-{host}.{dead.pid}.ghi789"
    for partial in (stale, live, elsewhere):
        partial.mkdir()
        (partial / "metadata.csv").write_text("partial")
    generate(SynthConfig(users=2, test_users=1, stage_seconds=2.0), out)
    assert (out / "metadata.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live.name, elsewhere.name])
