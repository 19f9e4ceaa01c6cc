"""One sweep per runs directory at a time, and nothing left behind by a sweep killed while writing."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from conftest import tiny_args
from test_cli import CLI, assert_one_line_error, cli, records
from test_resume import wait_for

from bench.run.store import Store, read_json
from cpep.synth.config import SynthConfig
from cpep.synth.simulator import generate
from cpep.threads import available_cpus

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


def process(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a live or zombie process; None when there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[0], int(fields[19])


def forked_children(parent: int) -> dict[int, int]:
    """The processes `parent` forked (its own command line: not programs it ran), with their start times."""
    try:
        command = Path(f"/proc/{parent}/cmdline").read_bytes()
    except OSError:
        return {}
    found = {}
    for entry in Path("/proc").iterdir():
        p = process(int(entry.name)) if entry.name.isdigit() else None
        if p and p[0] == parent:
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_bytes() == command:
                    found[int(entry.name)] = p[2]
    return found


def alive(pid: int, started: int) -> bool:
    p = process(pid)
    return p is not None and p[2] == started and p[1] not in ("Z", "X")


def test_a_run_killed_while_generating_data_leaves_nothing_behind_after_the_next(tmp_path):
    results = tmp_path / "results"
    first = subprocess.Popen([*CLI, "run", *QUICK_POSE_MAE, *SMALL_DATA, "--runs-dir", str(results)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writers = {}
    try:
        partial = wait_for(lambda: next((results / "data").glob(".synthetic-*"), None), 600,
                           "the first run to start generating its data")
        if available_cpus() > 1:  # users are then written by forked processes (with one CPU, by the run)
            writers = wait_for(lambda: forked_children(first.pid), 600, "the first run's data writer processes")
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert partial.is_dir() and not list((results / "data").glob("synthetic-*")), "killed after generating"
        # The writers die with the run (they would otherwise write on, and hold its lock).
        wait_for(lambda: not any(alive(pid, started) for pid, started in writers.items()), 300,
                 f"the killed run's data writers {sorted(writers)} to end")
    finally:
        first.kill()
        first.wait()
        for pid, started in writers.items():
            if alive(pid, started):
                os.kill(pid, signal.SIGKILL)
    cli("run", *QUICK_POSE_MAE, *SMALL_DATA, "--runs-dir", results)
    left = [p.name for p in (results / "data").iterdir()]
    assert len(left) == 1 and left[0].startswith("synthetic-"), left
    assert records(results)["pose_mae/seed-0"]["status"] == "done"


HOLD_AND_FORK = """
import os, signal, sys, time
from bench.run.store import Store
with Store(sys.argv[1]).lock("a run whose child outlives it"):
    ready, tell = os.pipe()
    child = os.fork()
    if child == 0:  # the fork hooks have run by now
        os.write(tell, b"x")
        time.sleep(600)
        os._exit(0)
    os.read(ready, 1)  # a child not yet scheduled after fork has not closed its copy of the lock
    print(child, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_child_forked_by_a_killed_run_does_not_keep_the_runs_directory_locked(tmp_path):
    results = tmp_path / "results"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_AND_FORK, str(results)], stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    started = process(child)[2]
    try:
        assert holder.wait(timeout=300) == -signal.SIGKILL
        assert alive(child, started)
        with Store(results).lock("the next run"):
            assert read_json(results / "run.lock")["command"] == "the next run"
    finally:
        os.kill(child, signal.SIGKILL)


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
