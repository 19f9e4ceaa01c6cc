"""Doing a run's work, shared by every executor: each stage once, then the run's record.

A stage that raises leaves its full traceback in the stage's error.log and a one-line reason in failed.json;
its run is recorded as failed with that reason and the log's path. A failed stage is tried again by the next
invocation, not within one, so a shared stage that fails is not recomputed per run.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from typing import Callable

from bench.run import compute, provenance
from bench.run.planner import Run, Stage, epochs, unique_stages
from bench.run.store import Store, atomic_write_json
from cpep.errors import DiskFull


class StageFailed(Exception):
    def __init__(self, reason: str, log: str | None):
        super().__init__(reason)
        self.reason, self.log = reason, log


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def prepare(runs: list[Run], store: Store, force: bool = False) -> None:
    """Start of an invocation: earlier failures are tried again; with `force`, finished stages too (a stale
    stage reused with --reuse-stale belongs to older code and is never cleared). The progress an interrupted
    attempt left is removed: the stage's next attempt writes its own."""
    for stage in unique_stages(runs):
        store.clear_failure(stage)
        if force and not stage.stale:
            store.clear_stage(stage)
        if not store.stage_done(stage):
            (store.stage_dir(stage) / "progress.json").unlink(missing_ok=True)


def worker() -> dict:
    """Who computes: this host and process, and the SLURM job it runs in."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def _failed(kind: str, key: str, store: Store) -> StageFailed | None:
    failure = store.failure(kind, key)
    if failure is None:
        return None
    log = store.root / "stages" / f"{kind}-{key}" / "error.log"
    return StageFailed(failure, str(log) if log.is_file() else None)


def _writing_progress(stage: Stage, store: Store, on_epoch: Callable | None) -> Callable[[int, dict], None]:
    """The stage's progress.json now (this attempt has started) and after every epoch, for `status` and the
    progress bars (bench.run.eta; removed when the stage ends); then on_epoch. An attempt resumed from a checkpoint
    measures its seconds per epoch over its own epochs."""
    path = store.stage_dir(stage) / "progress.json"
    progress = {"epoch": None, "epochs": epochs(stage), "loss": None, "started": time.time(), "first_epoch": None,
                "per_epoch": None, "worker": worker()}
    atomic_write_json(path, {**progress, "updated": provenance.now()})

    def each_epoch(epoch: int, log: dict) -> None:
        if progress["first_epoch"] is None:
            progress["first_epoch"] = epoch - 1
        seconds = time.time() - progress["started"]
        progress.update(epoch=epoch, loss=log.get("loss"), per_epoch=seconds / (epoch - progress["first_epoch"]))
        atomic_write_json(path, {**progress, "updated": provenance.now()})
        if on_epoch:
            on_epoch(epoch, log)

    return each_epoch


def ensure_stage(stage: Stage, store: Store, on_epoch: Callable | None = None) -> None:
    """Compute the stage unless it is done; a failure is written beside it and raised as StageFailed."""
    if store.stage_done(stage):
        return
    for kind, key in ((stage.kind, stage.key), *stage.inputs):
        failed = _failed(kind, key, store)
        if failed:
            raise failed
    store.remove_temporaries(store.stage_dir(stage))
    try:
        compute.execute(stage, store, _writing_progress(stage, store, on_epoch))
    except DiskFull:  # not a failure of this stage, and nothing more can be written: the sweep stops
        raise
    except Exception as e:
        reason = f"{stage.kind}: {one_line(e)}"
        store.mark_failed(stage, reason, traceback.format_exc())
        raise StageFailed(reason, str(store.error_log(stage))) from e


def mark_running(run: Run, store: Store) -> None:
    store.remove_temporaries(store.run_record_path(run).parent)
    rec = compute.record(run, "running", store)
    rec["worker"] = worker()
    store.write_record(run, rec)


def complete(run: Run, store: Store, on_stage: Callable[[Stage], Callable | None] | None = None) -> dict:
    """Every stage of the run, then its record (done or failed), which is returned."""
    mark_running(run, store)
    try:
        for stage in run.stages:
            ensure_stage(stage, store, on_stage(stage) if on_stage else None)
        rec = compute.record(run, "done", store)
    except StageFailed as e:
        rec = compute.record(run, "failed", store, error=e.reason, error_log=e.log)
    store.write_record(run, rec)
    return rec
