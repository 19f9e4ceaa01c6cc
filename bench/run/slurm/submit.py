"""Runs as SLURM job arrays through submitit.

A submission is one job array per level of the stage graph: first the training stages without inputs, then the
stages that read them (align reads both MAEs), then one job per run that evaluates and writes the run's record.
Every stage is submitted once however many runs share it, and each array waits for the earlier ones with
`afterany`, so a failed stage fails its runs (through its failed.json) instead of blocking them forever.

Jobs are `submitit.helpers.Checkpointable`: on a timeout submitit requeues them, and a job requeued for any
reason (preemption, `scontrol requeue`) starts the stage again, which resumes from the checkpoint the training
loop writes every epoch.

The submitted job ids go to <runs>/runs/<suite>/<dataset>-<data key>/slurm.json, for `status` and `cancel`.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import submitit
import torch
from rich.console import Console
from submitit.core.utils import FailedJobError

from bench.run import provenance, runner
from bench.run.planner import Run, Stage, epochs, unique_stages
from bench.run.slurm.profile import INIT_KEYS, Profile
from bench.run.slurm.watch import (
    Job,
    SlurmUnavailable,
    WaitStopped,
    is_active,
    job_list,
    jobs_path,
    log_dir,
    queue,
    read_jobs,
    watch,
)
from bench.run.store import Store, atomic_write_json
from cpep.errors import UserError

# ------------------------------------------------------------------ the jobs

def _log_epochs(stage: Stage):
    total = epochs(stage)
    return lambda epoch, log: print(f"{stage.kind} epoch {epoch}/{total} loss {log.get('loss', '-')}", flush=True)


class StageJob(submitit.helpers.Checkpointable):
    """Computes one stage; requeued, it resumes from the stage's checkpoint."""

    def __call__(self, stage: Stage, root: str) -> str:
        store = Store(root)
        checkpoint = store.checkpoint_path(stage)
        if checkpoint.exists() and not store.stage_done(stage):
            epoch = torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]
            print(f"{stage.name}: resuming from its checkpoint after epoch {epoch}", flush=True)
        for kind, key in stage.inputs:
            source = Stage(kind, key, stage.seed, stage.method, {})
            if not store.stage_done(source) and not store.stage_failure(source):
                raise RuntimeError(f"input {source.name} did not finish")
        runner.ensure_stage(stage, store, _log_epochs(stage))  # raises on failure: SLURM then says FAILED
        return stage.name


class RunJob(submitit.helpers.Checkpointable):
    """Evaluates one run (computing what was not given to stage jobs) and writes its record."""

    def __call__(self, run: Run, root: str, delegated: tuple[str, ...]) -> str:
        store = Store(root)
        _blame_vanished_stages(run, store, set(delegated))
        rec = runner.complete(run, store)
        print(f"{run.ident}: {rec['status']} {rec['error'] or rec['metrics']}", flush=True)
        return rec["status"]


def _blame_vanished_stages(run: Run, store: Store, delegated: set[str]) -> None:
    """A stage job killed without a word (out of memory, cancelled, out of time) leaves neither a result nor a
    failure; say so beside the stage, so this run fails with that reason instead of computing the stage itself
    (possibly at the same time as other runs that share it)."""
    failed = set()
    for stage in run.stages:
        if store.stage_failure(stage) or any(f"{k}-{key}" in failed for k, key in stage.inputs):
            failed.add(stage.name)
        elif stage.name in delegated and not store.stage_done(stage):
            store.mark_failed(stage, f"{stage.kind}: its SLURM job ended without a result (killed, cancelled, out "
                                     f"of memory or of time?); see the job logs")
            failed.add(stage.name)


# ------------------------------------------------------------------ submitting

def check_idle(store: Store, runs: list[Run]) -> None:
    """Refuse a second submission while the suite's jobs are queued or running: both would compute the same stages."""
    suite, data_dir = runs[0].suite, runs[0].data_dir
    jobs = job_list(read_jobs(store, suite, data_dir))
    try:
        states = queue([j.job_id for j in jobs])
    except SlurmUnavailable as e:
        raise UserError(f"--executor slurm: {e}") from None
    active = [j for j in jobs if is_active(j.job_id, states)]
    if active:
        where = f"--suite {suite} --runs-dir {store.root}"
        raise UserError(f"suite {suite} has {len(active)} SLURM jobs still queued or running (see `cpep-bench "
                        f"status {where}`; stop them with `cpep-bench cancel {where}`)")


def stage_levels(runs: list[Run], store: Store) -> list[list[tuple[Stage, tuple[str, ...]]]]:
    """The stages to submit, each with the runs that need it, grouped by depth in the stage graph. Evaluations
    stay in the runs' own jobs unless several runs share one."""
    users: dict[str, list[str]] = defaultdict(list)
    for run in runs:
        for stage in run.stages:
            users[stage.name].append(run.ident)
    todo = [s for s in unique_stages(runs)
            if not store.stage_done(s) and (s.kind != "eval" or len(users[s.name]) > 1)]
    level: dict[str, int] = {}
    for stage in todo:  # unique_stages puts inputs first
        level[stage.name] = 1 + max((level.get(f"{k}-{key}", -1) for k, key in stage.inputs), default=-1)
    levels: list[list] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for stage in todo:
        levels[level[stage.name]].append((stage, tuple(users[stage.name])))
    return levels


def _executor(profile: Profile, folder: Path) -> submitit.AutoExecutor:
    params = dict(profile.params)
    init = {k: params.pop(k) for k in INIT_KEYS if k in params}
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", **init)
    executor.update_parameters(**params)
    return executor


def submit(runs: list[Run], store: Store, profile: Profile) -> list[Job]:
    """One array per level of stages, then one array of run jobs; each waits for every earlier array."""
    suite, data_dir = runs[0].suite, runs[0].data_dir
    executor = _executor(profile, log_dir(store, suite, data_dir))
    root = str(store.root)
    jobs: list[Job] = []
    arrays: list[str] = []

    def array(name: str, fn, *args) -> list[str]:
        dependency = {"slurm_dependency": "afterany:" + ":".join(arrays)} if arrays else {}
        executor.update_parameters(name=f"cpep-{suite}-{name}", **dependency)
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's complaint; it is in the error
            submitted = executor.map_array(fn, *args)
        arrays.append(submitted[0].job_id.split("_")[0])
        return [j.job_id for j in submitted]

    levels = stage_levels(runs, store)
    try:
        for depth, level in enumerate(levels):
            names = "+".join(sorted(Counter(s.kind for s, _ in level)))
            ids = array(names, StageJob(), [s for s, _ in level], [root] * len(level))
            jobs += [Job(i, depth, s.name, users) for i, (s, users) in zip(ids, level)]
        delegated = tuple(s.name for level in levels for s, _ in level)
        ids = array("runs", RunJob(), runs, [root] * len(runs), [delegated] * len(runs))
        jobs += [Job(i, len(levels), "run", (r.ident,)) for i, r in zip(ids, runs)]
    except BaseException as e:  # a half-submitted sweep would run untracked: take it back
        if arrays:
            subprocess.run(["scancel", *arrays], capture_output=True, timeout=60)
        if isinstance(e, FailedJobError):
            raise UserError(f"sbatch refused the jobs of profile {profile.name}: {sbatch_complaint(str(e))}") from None
        raise
    return jobs


def sbatch_complaint(message: str) -> str:
    """sbatch's own lines ("sbatch: error: ...", "sbatch: unrecognized option ...") in submitit's message, joined
    on one line; else its last line. sbatch follows an unknown option with a usage hint, and the specific reason
    for refusing a job with a generic "Batch job submission failed: ..." line."""
    lines = [line.strip() for line in message.strip().splitlines()] or [""]
    return "; ".join(line for line in lines if line.startswith("sbatch: ")) or lines[-1]


def write_jobs(store: Store, runs: list[Run], jobs: list[Job], profile: Profile) -> None:
    suite, data_dir = runs[0].suite, runs[0].data_dir
    atomic_write_json(jobs_path(store, suite, data_dir), {
        "suite": suite, "data": data_dir, "profile": profile.name, "submitted": provenance.now(),
        "logs": str(log_dir(store, suite, data_dir)), "cancelled": None,
        "jobs": [{"job_id": j.job_id, "level": j.level, "what": j.what, "runs": list(j.runs)} for j in jobs],
    })


def execute(runs: list[Run], store: Store, profile: Profile, console: Console, wait: bool = False,
            timeout_min: float | None = None) -> list[dict] | None:
    """Submit the runs; with `wait`, follow them until their jobs are finished and return their records."""
    before = {r.ident: store.record(r) for r in runs}
    jobs = submit(runs, store, profile)
    write_jobs(store, runs, jobs, profile)
    stage_jobs = [j for j in jobs if j.what != "run"]
    console.print(f"submitted {len(jobs)} SLURM jobs ({len(stage_jobs)} stages, {len(runs)} runs) with profile "
                  f"{profile.name}; logs in {log_dir(store, runs[0].suite, runs[0].data_dir)}")
    watch_cmd = f"cpep-bench status --suite {runs[0].suite} --runs-dir {store.root}"
    if not wait:
        arrays = sorted({j.job_id.split("_")[0] for j in jobs}, key=int)
        console.print(f"job arrays: {' '.join(arrays)}\nwatch them with: {watch_cmd}")
        return None
    try:
        return watch(runs, store, jobs, before, console, timeout_min)
    except KeyboardInterrupt:
        console.print(f"stopped watching; the jobs go on. Watch them with: {watch_cmd}")
        raise WaitStopped(130) from None
