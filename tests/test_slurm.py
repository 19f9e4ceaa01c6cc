"""--executor slurm against the real one-node cluster (slurm/cluster.sh): same metrics as local, shared stages
computed once, a requeued job resumes from its checkpoint, status and cancel. Profile errors need no cluster."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_args
from rich.console import Console
from test_cli import CLI, assert_one_line_error, cli, records
from test_resume import wait_for

from bench.run.slurm import watch
from bench.run.slurm.profile import check_available, load_profile
from bench.run.status import suite_status
from bench.run.store import Store
from cpep.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SLURM = ["--executor", "slurm", "--profile", "local"]
JOB_S = 600  # bound on a job starting, or ending, on a loaded machine

# Three runs sharing stages: one Pose-MAE for all, one EMG-MAE for both CPEP runs; `diverges` fails in align.
SWEEP = """
seeds = [0]
[[variants]]
name = "cpep"
method = "cpep"
[[variants]]
name = "pose_mae"
method = "pose_mae"
[[variants]]
name = "diverges"
method = "cpep"
set = { "align.lr" = 1e6 }
"""


@pytest.fixture(scope="module")
def cluster_up():
    """The local cluster, up: skip without it, except in CI (CPEP_REQUIRE_SLURM=1), where that is a failure."""
    try:
        up = subprocess.run([REPO / "slurm" / "cluster.sh", "status"], capture_output=True, text=True, timeout=120)
        why = up.stdout.strip() or up.stderr.strip()
        ok = up.returncode == 0
    except (OSError, subprocess.TimeoutExpired) as e:
        ok, why = False, str(e)
    if not ok:
        message = f"the local SLURM cluster is not running ({why}); start it with `slurm/cluster.sh start` (root)"
        if os.environ.get("CPEP_REQUIRE_SLURM") == "1":
            pytest.fail(f"CPEP_REQUIRE_SLURM=1 but {message}")
        pytest.skip(message)


def jobs_under(folder: Path) -> list[str]:
    """Queued and running jobs whose batch script lies under `folder`: submitit writes it into the job log folder,
    inside the runs directory the jobs were submitted from."""
    out = subprocess.run(["squeue", "--noheader", "--format=%A|%o"], capture_output=True, text=True, check=True,
                         timeout=120)
    lines = (line.split("|", 1) for line in out.stdout.splitlines())
    return [job for job, script in lines if script.startswith(f"{folder}/")]


@pytest.fixture
def cluster(cluster_up, tmp_path):
    """The local cluster; after the test, passed or failed, every job it submitted (from a runs directory in
    its tmp_path) is cancelled and gone, so that none holds the node while later tests wait for it."""
    yield
    folder = tmp_path.resolve()
    left = jobs_under(folder)
    if left:
        subprocess.run(["scancel", *left], check=True, timeout=120)
        wait_for(lambda: not jobs_under(folder), JOB_S, f"the test's leftover jobs {' '.join(left)} to end", every=1)


def data_dir(results: Path, suite: str) -> str:
    """The one data identity's folder name a test's sweep files its records under: synthetic-<key>."""
    (found,) = (results / "runs" / suite).glob("synthetic-*")
    return found.name


def jobs_of(results: Path, suite: str) -> list[dict]:
    (path,) = (results / "runs" / suite).glob("*/slurm.json")  # one data identity: <dataset>-<data key>
    return json.loads(path.read_text())["jobs"]


def logs_of(results: Path, suite: str) -> Path:
    (folder,) = (results / "slurm" / suite).glob("*")
    return folder


def all_finished(results: Path, suite: str) -> bool:
    states = watch.queue([j["job_id"] for j in jobs_of(results, suite)])
    return not any(watch.is_active(j["job_id"], states) for j in jobs_of(results, suite))


def job_log(results: Path, suite: str, job_id: str) -> str:
    (path,) = logs_of(results, suite).glob(f"{job_id}_*log.out")
    return path.read_text()


@pytest.mark.slurm
def test_sweep_on_slurm_equals_local_and_computes_each_shared_stage_once(cluster, make_results, tmp_path):
    suite = tmp_path / "sweep.toml"
    suite.write_text(SWEEP)
    args = ["run", "--suite", suite, *tiny_args()]
    on_slurm, here = make_results(tmp_path / "slurm"), make_results(tmp_path / "local")
    assert cli(*args, "--runs-dir", here, check=False).returncode == 1  # one run diverges
    wait_min = 30
    out = subprocess.run([*CLI, *map(str, args), *SLURM, "--wait", "--wait-timeout", str(wait_min),
                          "--runs-dir", str(on_slurm)], capture_output=True, text=True, timeout=wait_min * 60 + 600)
    assert "timed out" not in out.stdout, f"the sweep's jobs did not end within {wait_min} min:\n{out.stdout}"
    assert out.returncode == 1, out.stdout + out.stderr

    ours, theirs = records(on_slurm), records(here)
    assert set(ours) == {"cpep/seed-0", "pose_mae/seed-0", "diverges/seed-0"}
    for run in ("cpep/seed-0", "pose_mae/seed-0"):
        assert ours[run]["status"] == "done" and ours[run]["metrics"] == theirs[run]["metrics"], run
        assert ours[run]["provenance"]["slurm_job_id"]
    assert ours["diverges/seed-0"]["status"] == "failed"
    assert ours["diverges/seed-0"]["error"] == theirs["diverges/seed-0"]["error"]
    assert ours["diverges/seed-0"]["error"].startswith("align: TrainingDiverged")
    assert "cpep/seed-0: LP" in out.stdout and "diverges/seed-0: failed align: TrainingDiverged" in out.stdout

    jobs = jobs_of(on_slurm, "sweep")
    stage_jobs = [j["what"] for j in jobs if j["what"] != "run"]
    assert sorted(s.split("-")[0] for s in stage_jobs) == ["align", "align", "emg_mae", "pose_mae"]
    pose_job = next(j for j in jobs if j["what"].startswith("pose_mae"))
    assert len(pose_job["runs"]) == 3 and pose_job["level"] == 0
    assert {j["level"] for j in jobs if j["what"].startswith("align")} == {1}
    assert sum(j["what"] == "run" for j in jobs) == 3
    # One Pose-MAE trained, once: its first epoch appears in exactly one job log.
    logs = [p.read_text() for p in logs_of(on_slurm, "sweep").glob("*_log.out")]
    assert sum("pose_mae epoch 1/" in log for log in logs) == 1
    assert {p.name for p in on_slurm.glob("stages/*")} == {p.name for p in here.glob("stages/*")}

    rows = {r.ident: r for r in suite_status(Store(on_slurm), "sweep")[0]}
    assert {i: r.status for i, r in rows.items()} == {"cpep/seed-0": "done", "pose_mae/seed-0": "done",
                                                      "diverges/seed-0": "failed"}
    assert rows["diverges/seed-0"].detail == ours["diverges/seed-0"]["error"]
    assert "COMPLETED" in rows["cpep/seed-0"].job

    # Again: the failed run is retried, alone, from its failed stage; finished runs and stages are not resubmitted.
    again = cli(*args, *SLURM, "--no-wait", "--runs-dir", on_slurm)
    assert "3 runs, 2 already done, 1 to do" in again.stdout
    retried = jobs_of(on_slurm, "sweep")  # the `cluster` fixture cancels them
    assert [(j["what"].split("-")[0], j["level"], j["runs"]) for j in retried] == [
        ("align", 0, ["diverges/seed-0"]), ("run", 1, ["diverges/seed-0"])]


EPOCHS = 300  # about 10 s of training: a requeue (SIGKILL 5 s after it) lands in the middle


@pytest.mark.slurm
def test_requeued_job_resumes_from_its_checkpoint_to_identical_metrics(cluster, make_results, tmp_path):
    args = ["run", "--suite", "smoke", "--variants", "pose_mae", *tiny_args(),
            "--set", f"mae.epochs={EPOCHS}", "--set", "mae.batch_size=8"]
    on_slurm, here = make_results(tmp_path / "slurm"), make_results(tmp_path / "local")
    cli(*args, *SLURM, "--no-wait", "--runs-dir", on_slurm)
    wait_for(lambda: next(on_slurm.glob("stages/pose_mae-*/checkpoint.pt"), None), JOB_S, "the first checkpoint")
    (job,) = [j["job_id"] for j in jobs_of(on_slurm, "smoke") if j["what"].startswith("pose_mae")]
    # Requeued and held, so that the uninterrupted run below has the cores to itself; released, it starts again.
    subprocess.run(["scontrol", "requeuehold", job], check=True, timeout=120)
    wait_for(lambda: watch.queue([job])[job].state not in watch.RUNNING, JOB_S, "the requeued job to stop",
             every=0.2)
    assert not list(on_slurm.glob("stages/pose_mae-*/meta.json")), "stopped after training ended: raise EPOCHS"
    cli(*args, "--runs-dir", here)
    subprocess.run(["scontrol", "release", job], check=True, timeout=120)
    wait_for(lambda: all_finished(on_slurm, "smoke"), 2 * JOB_S, "the requeued job and the run job to end", every=0.5)

    log = job_log(on_slurm, "smoke", job)
    assert log.count("Starting with JobEnvironment") == 2
    resumed_after = int(re.search(r"resuming from its checkpoint after epoch (\d+)", log).group(1))
    assert 1 <= resumed_after < EPOCHS
    ours, theirs = records(on_slurm)["pose_mae/seed-0"], records(here)["pose_mae/seed-0"]
    assert ours["status"] == "done" and ours["metrics"] == theirs["metrics"]
    a = torch.load(next(on_slurm.glob("stages/pose_mae-*/model.pt")))
    b = torch.load(next(here.glob("stages/pose_mae-*/model.pt")))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slurm
def test_status_follows_a_submission_and_cancel_stops_it(cluster, make_results, tmp_path):
    results = make_results(tmp_path / "results")
    args = ["run", "--suite", "smoke", *tiny_args(), "--set", "mae.epochs=1000", "--runs-dir", results]
    out = cli(*args, *SLURM)
    assert "job arrays:" in out.stdout and "cpep-bench status --suite smoke" in out.stdout
    assert_one_line_error(cli(*args, *SLURM, check=False), "still queued or running")

    def statuses():
        return {r.ident: r for r in suite_status(Store(results), "smoke")[0]}

    def once_training():
        rows = statuses()
        return rows if rows["cpep/seed-0"].status == "running" and rows["cpep/seed-0"].epoch else None

    rows = wait_for(once_training, JOB_S, "cpep/seed-0 to be running an epoch of its first stage", every=0.5)
    row = rows["cpep/seed-0"]
    assert row.stage in ("pose_mae", "emg_mae") and re.fullmatch(r"\d+/1000", row.epoch) and float(row.loss) > 0, row
    assert "RUNNING" in row.job and re.fullmatch(r"\d+:\d\d:\d\d", row.elapsed)
    assert rows["pose_mae/seed-0"].status in ("running", "queued")
    assert rows["emg_log_power/seed-0"].status == "queued"  # its run job waits for the stage jobs

    cancelled = cli("cancel", "--suite", "smoke", "--runs-dir", results).stdout
    assert re.fullmatch(r"suite smoke: cancelled 7 SLURM jobs of 4 runs; .*\n", cancelled)
    wait_for(lambda: all_finished(results, "smoke"), JOB_S, "the cancelled jobs to end", every=0.5)
    assert {r.status for r in statuses().values()} == {"cancelled"}
    assert records(results) == {}  # no run job ran: no record, partial or otherwise
    data_dir = logs_of(results, "smoke").name
    assert watch.cancel(Store(results), "smoke", data_dir, Console(file=io.StringIO())) == 0  # nothing left

    # Submitted again: status follows the new jobs, and shows no epoch of the cancelled attempt.
    resubmitted = time.time()
    cli(*args, *SLURM)
    new_jobs = {j["job_id"] for j in jobs_of(results, "smoke")}
    row = statuses()["cpep/seed-0"]
    assert row.status in ("queued", "running") and row.job.split()[0] in new_jobs, row
    for progress in results.glob("stages/*/progress.json"):
        assert json.loads(progress.read_text())["started"] >= resubmitted, "a cancelled attempt's progress"
    assert cli("cancel", "--suite", "smoke", "--runs-dir", results).returncode == 0


@pytest.mark.slurm
def test_stage_job_killed_without_a_word_fails_its_run_instead_of_blocking_it(cluster, make_results, tmp_path):
    results = make_results(tmp_path / "results")
    cli("run", "--suite", "smoke", "--variants", "pose_mae", *tiny_args(), "--set", "mae.epochs=1000", *SLURM,
        "--runs-dir", results)
    (stage_job,) = [j["job_id"] for j in jobs_of(results, "smoke") if j["what"] != "run"]
    wait_for(lambda: next(results.glob("stages/pose_mae-*/checkpoint.pt"), None), JOB_S, "training to start")
    subprocess.run(["scancel", stage_job], check=True, timeout=120)  # as the OOM killer or an admin would
    wait_for(lambda: all_finished(results, "smoke"), JOB_S, "the run job to end", every=0.5)
    rec = records(results)["pose_mae/seed-0"]
    assert rec["status"] == "failed"
    assert rec["error"].startswith("pose_mae: its SLURM job ended without a result")
    assert not list(results.glob("stages/pose_mae-*/meta.json"))  # the run job did not train it instead


@pytest.mark.slurm
def test_options_sbatch_refuses_are_a_one_line_error(cluster, make_results, tmp_path):
    profile = tmp_path / "wrong.toml"
    profile.write_text("[sbatch]\nno-such-option = 3\n")
    results = make_results(tmp_path / "results")
    result = cli("run", "--suite", "smoke", "--variants", "pose_mae", *tiny_args(), "--executor", "slurm",
                 "--profile", profile, "--runs-dir", results, check=False)
    assert_one_line_error(result, "sbatch refused the jobs of profile wrong: sbatch: ")
    assert "sbatch: unrecognized option '--no-such-option=3'" in result.stderr  # not its usage hint
    assert not list(results.glob("runs/**/slurm.json")) and not list(results.glob("runs/**/sweep.json"))


def test_unknown_profile_is_a_one_line_error(tmp_path):
    result = cli("run", "--suite", "smoke", "--executor", "slurm", "--profile", "nope", "--runs-dir", tmp_path,
                 check=False)
    assert_one_line_error(result, "unknown SLURM profile 'nope'")
    assert not (tmp_path / "runs").exists()


def test_profile_with_unknown_keys_or_wrong_types_is_refused(tmp_path):
    profile = tmp_path / "typo.toml"
    profile.write_text('partition = "gpu"\ngpus = 1\n')
    with pytest.raises(UserError, match=r"typo.toml: unknown key\(s\) gpus \(known: partition, account"):
        load_profile(str(profile))
    profile.write_text('mem_gb = "lots"\n')
    with pytest.raises(UserError, match="mem_gb = 'lots' has the wrong type"):
        load_profile(str(profile))
    assert load_profile("local").params["slurm_partition"] == "debug"


def test_slurm_executor_without_slurm_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch there
    with pytest.raises(UserError, match="sbatch not found on PATH"):
        check_available()
