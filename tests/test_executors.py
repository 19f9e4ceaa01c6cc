"""Executors are plug-ins: the local one with --jobs, one from a plug-in folder, options an executor does not take,
and the progress of a sweep off a terminal."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import tiny_args
from test_cli import CLI, assert_one_line_error, cli, records
from test_resume import START_S, wait_for

from bench import plugins
from bench.run.side_by_side import cpu_shares

PLUGINS = Path(__file__).resolve().parent / "plugins"
SUITE = ["--suite", "smoke", *tiny_args()]


def outcome(results: Path) -> dict:
    """What a sweep computed: each run's status, metrics and stage keys."""
    return {run: (r["status"], r["metrics"], [s["key"] for s in r["stages"]]) for run, r in records(results).items()}


def weights(results: Path) -> dict:
    return {p.parent.name: torch.load(p) for p in results.glob("stages/*/model.pt")}


def assert_same_weights(a: dict, b: dict) -> None:
    assert set(a) == set(b) and a
    for stage in a:
        assert a[stage].keys() == b[stage].keys() and all(torch.equal(a[stage][k], b[stage][k]) for k in a[stage]), \
            stage


@pytest.fixture(scope="module")
def one_by_one(make_results, tmp_path_factory):
    """The smoke suite, tiny, computed one stage after another in the `run` process (the default)."""
    results = make_results(tmp_path_factory.mktemp("one-by-one"))
    out = cli("run", *SUITE, "--jobs", "1", "--runs-dir", results)
    return results, out


def test_jobs_2_computes_the_same_weights_and_records_as_one_by_one(one_by_one, make_results, tmp_path):
    results = make_results(tmp_path / "jobs2")
    out = cli("run", *SUITE, "--jobs", "2", "--runs-dir", results)
    assert outcome(results) == outcome(one_by_one[0])
    assert_same_weights(weights(results), weights(one_by_one[0]))
    assert "cpep/seed-0: LP" in out.stdout


def test_off_a_terminal_a_line_tells_a_stages_epoch_loss_and_time_left(make_results, tmp_path):
    # Enough epochs that the stage is still computing when its first epoch is read, however loaded the machine.
    results = make_results(tmp_path / "lines")
    out = cli("run", *SUITE, "--variants", "pose_mae", "--set", "mae.epochs=40", "--jobs", "2", "--runs-dir", results)
    clock = r"\d+:\d\d:\d\d"
    line = rf"pose_mae \(seed 0\) epoch \d+/40, loss [\d.]+, {clock} elapsed, ETA {clock} \| runs 0/1 done"
    assert re.search(line, out.stdout), out.stdout


def test_an_executor_from_a_plugin_folder_runs_a_sweep_as_local_does(one_by_one, make_results, tmp_path):
    assert "threads" not in plugins.names("executor")  # not built in: found in the suite's plug-in folder alone
    suite = tmp_path / "suite.toml"
    suite.write_text(f'seeds = [0]\nplugins = ["{PLUGINS}"]\ninclude = ["smoke"]\n')
    results = make_results(tmp_path / "threads")
    out = cli("run", "--suite", suite, *tiny_args(), "--variants", "cpep,emg_log_power", "--executor", "threads",
              "--jobs", "2", "--runs-dir", results)
    assert "cpep/seed-0: done" in out.stdout
    ours, theirs = outcome(results), outcome(one_by_one[0])
    assert set(ours) == {"cpep/seed-0", "emg_log_power/seed-0"}
    assert all(ours[run] == theirs[run] for run in ours)
    assert_same_weights(weights(results), {k: v for k, v in weights(one_by_one[0]).items() if k in weights(results)})
    shown = cli("status", "--suite", suite, "--runs-dir", results).stdout
    assert "2 done" in shown


def test_status_watch_follows_a_sweep_until_every_run_has_ended(make_results, tmp_path):
    results = make_results(tmp_path / "results")
    args = ["--suite", "smoke", "--variants", "emg_log_power,pose_mae", *tiny_args(), "--set", "mae.epochs=200"]
    proc = subprocess.Popen([*CLI, "run", *args, "--runs-dir", str(results)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: next(results.glob("runs/smoke/*/sweep.json"), None), START_S, "the sweep file")
        watched = cli("status", "--suite", "smoke", "--watch", "--interval", "0.5", "--runs-dir", results)
        recs = records(results)
        assert set(recs) == {"emg_log_power/seed-0", "pose_mae/seed-0"}
        assert all(r["status"] == "done" for r in recs.values())  # it returned once every run had ended
        assert "2 done" in watched.stdout
        assert proc.wait(timeout=START_S) == 0
    finally:
        proc.kill()
        proc.wait()


def test_a_worker_killed_in_the_middle_of_a_stage_fails_that_stage_and_the_sweep_goes_on(make_results, tmp_path):
    results = make_results(tmp_path / "results")
    args = ["--suite", "smoke", "--variants", "pose_mae,emg_log_power", *tiny_args(), "--set", "mae.epochs=5000",
            "--jobs", "2"]
    proc = subprocess.Popen([*CLI, "run", *args, "--runs-dir", str(results)], stdout=subprocess.PIPE, text=True)
    try:
        def training():
            path = next(results.glob("stages/pose_mae-*/progress.json"), None)
            progress = json.loads(path.read_text()) if path else {}
            return progress if progress.get("epoch") else None

        worker = wait_for(training, START_S, "pose_mae to train an epoch in a worker process")["worker"]["pid"]
        assert worker != proc.pid
        os.kill(worker, signal.SIGKILL)  # as the out-of-memory killer would
        out, _ = proc.communicate(timeout=START_S)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1 and "1 of 2 runs failed" in out
    recs = records(results)
    assert recs["pose_mae/seed-0"]["status"] == "failed"
    assert recs["pose_mae/seed-0"]["error"].startswith("pose_mae: its worker process ended without a result (exit "
                                                       "code -9: killed, or out of memory?)")
    assert recs["emg_log_power/seed-0"]["status"] == "done"


@pytest.mark.parametrize("args, text", [
    (["--executor", "slurm", "--jobs", "2"], "--jobs is not an option of the slurm executor (it takes --profile, "
                                             "--wait, --wait-timeout)"),
    (["--profile", "local"], "--profile is not an option of the local executor (it takes --jobs)"),
    (["--wait"], "--wait is not an option of the local executor"),
    (["--jobs", "0"], "--jobs 0: at least 1 stage at a time"),
    (["--executor", "nope"], "unknown executor 'nope' (executors: local, slurm)"),
    (["--executor", "slurm", "--profile", "local", "--wait-timeout", "5"], "--wait-timeout is a limit on --wait"),
])
def test_an_option_the_executor_does_not_take_is_a_one_line_error(args, text, tmp_path):
    result = cli("run", "--suite", "smoke", *args, "--runs-dir", tmp_path / "runs", check=False)
    assert_one_line_error(result, text)
    assert not (tmp_path / "runs").exists()


def test_cpus_are_shared_out_among_side_by_side_stages():
    import os
    cpus = sorted(os.sched_getaffinity(0))
    shares = cpu_shares(len(cpus))
    assert sorted(c for share in shares for c in share) == cpus and all(len(s) == 1 for s in shares)
    assert cpu_shares(1) == [cpus]
    assert [len(s) for s in cpu_shares(len(cpus) + 1)] == [1] * (len(cpus) + 1)  # more stages than CPUs: one each
