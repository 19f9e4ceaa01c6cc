"""Local sweeps interrupted and failing: a killed run resumes to the same result, a raising stage fails its run only."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_args
from test_cli import CLI, cli, records

from bench.run.status import suite_status
from bench.run.store import Store

START_S = 600  # bound on a run getting through its first epoch on a loaded machine

# pose_mae alone, long enough (about 2 s of training) to be killed in the middle.
LONG_POSE_MAE = ["--suite", "smoke", "--variants", "pose_mae", *tiny_args(),
                 "--set", "mae.epochs=60", "--set", "mae.batch_size=8"]


def wait_for(predicate, timeout: float, what: str, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def checkpoint_of(results: Path, kind: str) -> Path | None:
    return next(results.glob(f"stages/{kind}-*/checkpoint.pt"), None)


def assert_records_whole(results: Path) -> None:
    """Every record is complete JSON; nothing else but hidden temporary files sits beside them."""
    for path in results.glob("runs/**/*"):
        if path.is_file() and not path.name.startswith("."):
            assert path.name.startswith("seed-") or path.name in ("slurm.json", "sweep.json"), path
            json.loads(path.read_text())


def test_killed_run_resumes_from_its_checkpoint_to_identical_metrics(make_results, tmp_path):
    killed, reference = make_results(tmp_path / "killed"), make_results(tmp_path / "reference")
    proc = subprocess.Popen([*CLI, "run", *LONG_POSE_MAE, "--runs-dir", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        checkpoint = wait_for(lambda: checkpoint_of(killed, "pose_mae"), START_S, "the first checkpoint")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    saved = torch.load(checkpoint, weights_only=False)
    assert 1 <= saved["epoch"] < 60, "killed after training ended: make the stage longer"
    assert not (checkpoint.parent / "meta.json").exists()
    assert_records_whole(killed)
    assert records(killed)["pose_mae/seed-0"]["status"] == "running"
    (row,), _ = suite_status(Store(killed), "smoke")
    assert (row.ident, row.status) == ("pose_mae/seed-0", "interrupted")
    assert f"process {records(killed)['pose_mae/seed-0']['worker']['pid']} " in row.detail
    assert "interrupted" in cli("status", "--suite", "smoke", "--runs-dir", killed).stdout

    cli("run", *LONG_POSE_MAE, "--runs-dir", killed)
    cli("run", *LONG_POSE_MAE, "--runs-dir", reference)
    resumed, uninterrupted = records(killed)["pose_mae/seed-0"], records(reference)["pose_mae/seed-0"]
    assert resumed["status"] == "done" and resumed["metrics"] == uninterrupted["metrics"]
    meta = json.loads((checkpoint.parent / "meta.json").read_text())
    # The epochs before the kill come from the checkpoint, wall-clock seconds included: it resumed, not restarted.
    assert meta["history"][:saved["epoch"]] == saved["history"]
    assert len(meta["history"]) == 60
    a = torch.load(checkpoint.parent / "model.pt")
    b = torch.load(next(reference.glob("stages/pose_mae-*/model.pt")))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not checkpoint.exists() and not (checkpoint.parent / "progress.json").exists()


CLOCK = r"\d+:\d\d:\d\d"


def test_status_mid_run_lists_queued_runs_with_loss_and_eta_and_cancel_stops_the_sweep(make_results, tmp_path):
    results = make_results(tmp_path / "results")
    args = ["--suite", "smoke", "--variants", "emg_log_power,pose_mae", "--seeds", "0,1", *tiny_args(),
            "--set", "mae.epochs=5000"]
    # Started with SIGINT ignored, as a shell starts `cpep-bench run ... &`: cancel must stop it all the same.
    proc = subprocess.Popen([*CLI, "run", *args, "--runs-dir", str(results)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        def training():
            rows = {r.ident: r for r in suite_status(Store(results), "smoke")[0]}
            row = rows.get("pose_mae/seed-0")
            return rows if row and row.status == "running" and row.epoch and int(row.epoch.split("/")[0]) >= 2 \
                else None

        rows = wait_for(training, START_S, "pose_mae/seed-0 to have trained 2 epochs", every=0.2)
        assert {i: r.status for i, r in rows.items()} == {"emg_log_power/seed-0": "done", "emg_log_power/seed-1": "done",
                                                          "pose_mae/seed-0": "running", "pose_mae/seed-1": "queued"}
        running, queued = rows["pose_mae/seed-0"], rows["pose_mae/seed-1"]
        assert running.stage == "pose_mae" and re.fullmatch(r"\d+/5000", running.epoch) and float(running.loss) > 0
        assert re.fullmatch(CLOCK, running.elapsed) and re.fullmatch(CLOCK, running.eta), running
        assert running.detail.startswith("on ")
        # Not started: its stages estimated from those of the same kind (the running Pose-MAE, the evaluations done).
        assert (queued.stage, queued.epoch, queued.loss) == ("pose_mae", "", "") and re.fullmatch(CLOCK, queued.eta)
        progress = json.loads(next(results.glob("stages/pose_mae-*/progress.json")).read_text())
        assert progress["epochs"] == 5000 and progress["per_epoch"] > 0 and progress["worker"]["pid"] == proc.pid
        shown = cli("status", "--suite", "smoke", "--runs-dir", results).stdout
        assert "2 done, 1 running, 1 queued" in shown and "the remaining stages take" in shown, shown

        out = cli("cancel", "--suite", "smoke", "--runs-dir", results).stdout
        assert "interrupted its sweep on synthetic-" in out and f"(process {proc.pid})" in out
        assert proc.wait(timeout=START_S) == 130  # as after Ctrl-C: finished runs and stages kept
    finally:
        proc.kill()
        proc.wait()
    rows = {r.ident: r for r in suite_status(Store(results), "smoke")[0]}
    assert [rows[f"pose_mae/seed-{s}"].status for s in (0, 1)] == ["cancelled", "cancelled"]
    assert rows["emg_log_power/seed-1"].status == "done"


def test_diverging_stage_fails_its_run_and_the_sweep_goes_on(make_results, tmp_path):
    results = make_results(tmp_path / "results")
    out = cli("run", "--suite", "smoke", *tiny_args(), "--set", "align.lr=1e6", "--runs-dir", results, check=False)
    assert out.returncode == 1
    recs = records(results)
    cpep, pose = recs["cpep/seed-0"], recs["pose_mae/seed-0"]
    assert cpep["status"] == "failed" and cpep["metrics"] is None
    assert cpep["error"].startswith("align: TrainingDiverged: loss became nan")
    assert "\n" not in cpep["error"]
    assert pose["status"] == "done" and pose["metrics"]["lp_id"] is not None  # ran after the failure
    assert "1 of 4 runs failed" in out.stdout
    failed = json.loads(next(results.glob("stages/align-*/failed.json")).read_text())
    assert failed["error"] == cpep["error"]
    rows = {r.ident: r for r in suite_status(Store(results), "smoke")[0]}
    assert (rows["cpep/seed-0"].status, rows["cpep/seed-0"].detail) == ("failed", cpep["error"])
    assert rows["pose_mae/seed-0"].status == "done"
    assert not list(results.glob("stages/align-*/model.pt"))
    assert not list(results.glob("stages/*/progress.json"))  # removed as each stage finished or failed


# CPEP's three training stages, each long enough (seconds) to be killed in the middle.
LONG_CPEP = ["--suite", "smoke", "--variants", "cpep", *tiny_args(), "--set", "mae.epochs=20", "--set",
             "align.epochs=20", "--set", "mae.batch_size=8", "--set", "align.batch_size=8"]


@pytest.fixture(scope="module")
def uninterrupted_cpep(tmp_path_factory, make_results):
    results = make_results(tmp_path_factory.mktemp("uninterrupted"))
    cli("run", *LONG_CPEP, "--runs-dir", results)
    return records(results)["cpep/seed-0"]


def stray_files(results: Path) -> list[Path]:
    """Temporary files (cpep.files) and progress files left in stage and record folders."""
    return [p for pattern in ("stages/*/.*.tmp", "runs/**/.*.tmp", "stages/*/progress.json", "stages/*/checkpoint.pt")
            for p in results.glob(pattern)]


@pytest.mark.parametrize("stage", ["pose_mae", "emg_mae", "align"])
def test_a_run_killed_in_any_stage_ends_as_if_never_killed(stage, uninterrupted_cpep, make_results, tmp_path):
    results = make_results(tmp_path / "results")
    proc = subprocess.Popen([*CLI, "run", *LONG_CPEP, "--runs-dir", str(results)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: next(results.glob(f"stages/{stage}-*/progress.json"), None), START_S,
                 f"the first epoch of {stage}")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not list(results.glob(f"stages/{stage}-*/meta.json")), f"killed after {stage} ended: make it longer"
    assert_records_whole(results)
    cli("run", *LONG_CPEP, "--runs-dir", results)
    recs = records(results)
    assert list(recs) == ["cpep/seed-0"]  # one record, not a second one beside it
    assert recs["cpep/seed-0"]["status"] == "done"
    assert recs["cpep/seed-0"]["metrics"] == uninterrupted_cpep["metrics"]
    assert [s["key"] for s in recs["cpep/seed-0"]["stages"]] == [s["key"] for s in uninterrupted_cpep["stages"]]
    assert not stray_files(results) and not (results / "run.lock").exists()
