"""Doing a run's work, shared by every executor: each stage once, then the run's record.

A run whose stage raises is recorded as failed with a one-line reason; nothing else stops. A failed stage is
tried again by the next invocation, not within one, so a shared stage that fails is not recomputed per run.
"""

from __future__ import annotations

import os
import socket
from typing import Callable

from bench import stages
from bench.planner import Run, Stage, unique_stages
from bench.store import Store


class StageFailed(Exception):
    pass


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def prepare(runs: list[Run], store: Store, force: bool = False) -> None:
    """Start of an invocation: earlier failures are tried again; with `force`, finished stages too."""
    for stage in unique_stages(runs):
        store.clear_failure(stage)
        if force:
            store.clear_stage(stage)


def ensure_stage(stage: Stage, store: Store, on_epoch: Callable | None = None) -> None:
    """Compute the stage unless it is done; a failure is written beside it and raised as StageFailed."""
    if store.stage_done(stage):
        return
    failure = store.stage_failure(stage)
    if failure:
        raise StageFailed(failure)
    for kind, key in stage.inputs:
        failure = store.stage_failure(Stage(kind, key, stage.seed, stage.method, {}))
        if failure:
            raise StageFailed(failure)
    try:
        stages.execute(stage, store, on_epoch)
    except Exception as e:
        reason = f"{stage.kind}: {one_line(e)}"
        store.mark_failed(stage, reason)
        raise StageFailed(reason) from e


def mark_running(run: Run, store: Store) -> None:
    rec = stages.record(run, "running", store)
    rec["worker"] = {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
    store.write_record(run, rec)


def complete(run: Run, store: Store, on_stage: Callable[[Stage], Callable | None] | None = None) -> dict:
    """Every stage of the run, then its record (done or failed), which is returned."""
    mark_running(run, store)
    try:
        for stage in run.stages:
            ensure_stage(stage, store, on_stage(stage) if on_stage else None)
        rec = stages.record(run, "done", store)
    except StageFailed as e:
        rec = stages.record(run, "failed", store, error=str(e))
    store.write_record(run, rec)
    return rec
