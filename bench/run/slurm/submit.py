"""Runs as SLURM job arrays through submitit.

A submission is one job array per level of the stage graph and resources: first the training stages without
inputs, then the stages that read them (align reads both MAEs), then one job per run that evaluates and writes the
run's record. Stages of one level whose kinds ask for different resources (the profile's [kinds.*] tables) go to
separate arrays; with `stages_per_gpu = k`, each job of an array computes k of its stages side by side. Every
stage is submitted once however many runs share it, and each level's arrays wait for the earlier levels' with
`afterany`, so a failed stage fails its runs (through its failed.json) instead of blocking them forever.

Jobs are `submitit.helpers.Checkpointable`: on a timeout submitit requeues them, and a job requeued for any
reason (preemption, `scontrol requeue`) starts the stage again, which resumes from the checkpoint the training
loop writes every epoch.

The profile's setup lines run under `set -e`: the first that fails ends the job with a line saying so in its log
(SETUP_FAILED), which `run --wait` and `status` report.

The submitted job ids go to <runs>/runs/<suite>/<dataset>-<data key>/slurm.json, for `status` and `cancel`.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import submitit
import torch
from rich.console import Console
from submitit.core.utils import FailedJobError

from bench.run import provenance, runner, side_by_side
from bench.run.planner import Run, Stage, levels, unique_stages
from bench.run.slurm.profile import INIT_KEYS, Profile
from bench.run.slurm.watch import (
    SETUP_FAILED,
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

def _starting(stage: Stage, store: Store) -> None:
    """Say where a requeued stage resumes; refuse to start before its inputs ended."""
    checkpoint = store.checkpoint_path(stage)
    if checkpoint.exists() and not store.stage_done(stage):
        epoch = torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]
        print(f"{stage.name}: resuming from its checkpoint after epoch {epoch}", flush=True)
    for kind, key in stage.inputs:
        source = Stage(kind, key, stage.seed, stage.method, {})
        if not store.stage_done(source) and not store.stage_failure(source):
            raise RuntimeError(f"input {source.name} did not finish")


class StageJob(submitit.helpers.Checkpointable):
    """Computes one stage; requeued, it resumes from the stage's checkpoint."""

    def __call__(self, stage: Stage, root: str) -> str:
        store = Store(root)
        _starting(stage, store)
        runner.ensure_stage(stage, store, side_by_side.epoch_lines(stage))  # raises on failure: SLURM says FAILED
        return stage.name


class PackedJob(submitit.helpers.Checkpointable):
    """Computes independent stages side by side, each in its own process on its share of the job's CPUs (and the
    job's GPU); requeued, each resumes from its checkpoint. Fails (after all ended) when one failed."""

    def __call__(self, stages: tuple[Stage, ...], root: str) -> str:
        store = Store(root)
        for stage in stages:
            _starting(stage, store)
        outcome = side_by_side.compute_all(list(stages), store, say_epochs=True)
        failed = [reason for reason in outcome.values() if reason]
        if failed:
            raise RuntimeError("; ".join(failed))
        return "+".join(s.name for s in stages)


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
    return [[(stage, tuple(users[stage.name])) for stage in level] for level in levels(todo)]


def guarded_setup(lines: list[str]) -> list[str]:
    """The profile's setup lines under `set -e`, with a line in the job's error log when one fails."""
    say = f'echo "{SETUP_FAILED} (exit $?) at: $BASH_COMMAND" >&2'
    return ["set -e", f"trap {shlex.quote(say)} EXIT", *lines, "trap - EXIT", "set +e"]


def _executor(params: dict, folder: Path) -> submitit.AutoExecutor:
    params = dict(params)
    init = {k: params.pop(k) for k in INIT_KEYS if k in params}
    if params.get("slurm_setup"):
        params["slurm_setup"] = guarded_setup(params["slurm_setup"])
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", **init)
    executor.update_parameters(**params)
    return executor


def by_resources(stages: list, profile: Profile) -> list[tuple[dict, list]]:
    """(stage, users) pairs grouped by the resources their kind asks for, in order of first appearance."""
    groups: dict[str, tuple[dict, list]] = {}
    for item in stages:
        params = profile.for_kind(item[0].kind)
        groups.setdefault(repr(sorted(params.items())), (params, []))[1].append(item)
    return list(groups.values())


def submit(runs: list[Run], store: Store, profile: Profile) -> list[Job]:
    """Per level of stages, one array per set of resources (a job per stage, or per `stages_per_gpu` stages),
    then one array of run jobs; each level's arrays wait for every earlier level's."""
    suite, data_dir = runs[0].suite, runs[0].data_dir
    folder, root, k = log_dir(store, suite, data_dir), str(store.root), profile.stages_per_gpu
    jobs: list[Job] = []
    arrays: list[str] = []

    def array(params: dict, after: list[str], name: str, fn, *args) -> list[str]:
        executor = _executor(params, folder)
        dependency = {"slurm_dependency": "afterany:" + ":".join(after)} if after else {}
        executor.update_parameters(name=f"cpep-{suite}-{name}", **dependency)
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's complaint; it is in the error
            submitted = executor.map_array(fn, *args)
        arrays.append(submitted[0].job_id.split("_")[0])
        return [j.job_id for j in submitted]

    stage_jobs = stage_levels(runs, store)
    try:
        for depth, level in enumerate(stage_jobs):
            after = list(arrays)
            for params, group in by_resources(level, profile):
                names = "+".join(sorted(Counter(s.kind for s, _ in group)))
                if k == 1:
                    ids = array(params, after, names, StageJob(), [s for s, _ in group], [root] * len(group))
                    jobs += [Job(i, depth, s.name, users) for i, (s, users) in zip(ids, group)]
                    continue
                packs = [group[i:i + k] for i in range(0, len(group), k)]
                ids = array(params, after, names, PackedJob(), [tuple(s for s, _ in p) for p in packs],
                            [root] * len(packs))
                jobs += [Job(i, depth, s.name, users) for i, pack in zip(ids, packs) for s, users in pack]
        delegated = tuple(s.name for level in stage_jobs for s, _ in level)
        ids = array(profile.for_kind("eval"), list(arrays), "runs", RunJob(), runs, [root] * len(runs),
                    [delegated] * len(runs))
        jobs += [Job(i, len(stage_jobs), "run", (r.ident,)) for i, r in zip(ids, runs)]
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
    stages = [j for j in jobs if j.what != "run"]
    console.print(f"submitted {len({j.job_id for j in jobs})} SLURM jobs ({len(stages)} stages, {len(runs)} runs) with profile "
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
