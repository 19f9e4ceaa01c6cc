"""Runs as SLURM job arrays through submitit, plus the `status` and `cancel` views of a suite's jobs.

A submission is one job array per level of the stage graph: first the training stages without inputs, then the
stages that read them (align reads both MAEs), then one job per run that evaluates and writes the run's record.
Every stage is submitted once however many runs share it, and each array waits for the earlier ones with
`afterany`, so a failed stage fails its runs (through its failed.json) instead of blocking them forever.

Jobs are `submitit.helpers.Checkpointable`: on a timeout submitit requeues them, and a job requeued for any
reason (preemption, `scontrol requeue`) starts the stage again, which resumes from the checkpoint the training
loop writes every epoch.

The submitted job ids go to <results>/runs/<suite>/<dataset>/slurm.json, for `status` and `cancel`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import submitit
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from submitit.core.utils import FailedJobError

from bench import provenance, runner
from bench.executors.local import summary
from bench.planner import Run, Stage, unique_stages
from bench.stages import epochs
from bench.store import Store, atomic_write_json, read_json
from cpep.errors import UserError

CHECKOUT_PROFILES = Path(__file__).resolve().parents[2] / "slurm" / "profiles"

# Profile key -> (accepted types, submitit parameter).
PROFILE_KEYS = {
    "partition": (str, "slurm_partition"),
    "account": (str, "slurm_account"),
    "qos": (str, "slurm_qos"),
    "constraint": (str, "slurm_constraint"),
    "gpus_per_task": (int, "slurm_gpus_per_task"),
    "cpus_per_task": (int, "cpus_per_task"),
    "mem_gb": ((int, float), "mem_gb"),
    "timeout_min": (int, "timeout_min"),
    "array_parallelism": (int, "slurm_array_parallelism"),
    "max_num_timeout": (int, "slurm_max_num_timeout"),
    "setup": (list, "slurm_setup"),
    "sbatch": (dict, "slurm_additional_parameters"),
}
# Given to the executor when it is made, not later (a submitit rule).
INIT_KEYS = ("slurm_max_num_timeout",)

# Job states after which a job does no more work; a job squeue no longer knows counts as finished too.
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED", "SPECIAL_EXIT", "REVOKED"}
RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"}
POLL_S = 2.0


# ------------------------------------------------------------------ profiles

@dataclass(frozen=True)
class Profile:
    name: str
    params: dict  # submitit parameters


def profile_names() -> list[str]:
    return sorted({p.stem for d in profile_dirs() for p in d.glob("*.toml")})


def profile_dirs() -> list[Path]:
    """slurm/profiles of the working directory, then of the checkout this package runs from (if it is one)."""
    return list(dict.fromkeys([Path.cwd() / "slurm" / "profiles", CHECKOUT_PROFILES]))


def load_profile(name: str | None) -> Profile:
    """A profile by name (slurm/profiles/NAME.toml) or by path to a TOML file; bad input is a UserError."""
    available = ", ".join(profile_names()) or "none"
    if not name:
        raise UserError(f"--executor slurm needs --profile NAME (profiles: {available}) or a TOML file")
    if name.endswith(".toml"):
        path = Path(name).expanduser()
    else:
        path = next((d / f"{name}.toml" for d in profile_dirs() if (d / f"{name}.toml").is_file()),
                    Path(f"{name}.toml"))
    if not path.is_file():
        raise UserError(f"unknown SLURM profile {name!r} (profiles: {available}; or give a TOML file's path)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"SLURM profile {name}: invalid TOML ({e})") from None
    unknown = sorted(set(raw) - set(PROFILE_KEYS))
    if unknown:
        raise UserError(f"SLURM profile {name}: unknown key(s) {', '.join(unknown)} "
                        f"(known: {', '.join(PROFILE_KEYS)})")
    params = {}
    for key, value in raw.items():
        types, param = PROFILE_KEYS[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise UserError(f"SLURM profile {name}: {key} = {value!r} has the wrong type")
        params[param] = value
    return Profile(path.stem, params)


def check_available() -> None:
    for tool in ("sbatch", "squeue", "srun"):
        if shutil.which(tool) is None:
            raise UserError(f"--executor slurm: {tool} not found on PATH (run this on a SLURM login node, or start "
                            f"the local cluster with slurm/cluster.sh start)")


# ------------------------------------------------------------------ what SLURM knows

@dataclass(frozen=True)
class JobState:
    state: str
    reason: str

    @property
    def active(self) -> bool:
        return self.state not in FINISHED

    def __str__(self) -> str:
        return self.state if self.reason in ("None", "") else f"{self.state} ({self.reason})"


class SlurmUnavailable(RuntimeError):
    pass


def queue(job_ids: list[str]) -> dict[str, JobState]:
    """squeue's view of these jobs (array tasks expanded, finished ones while slurmctld keeps them), by job id as
    submitit names it ("123" or "123_4") and by raw id (SLURM_JOB_ID inside the job, which records keep)."""
    bases = sorted({j.split("_")[0] for j in job_ids if j})
    if not bases:
        return {}
    cmd = ["squeue", "--noheader", "--array", "--states=all", "--jobs", ",".join(bases), "--format=%i|%A|%T|%r"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SlurmUnavailable(f"squeue: {e}") from None
    if out.returncode != 0:
        if "Invalid job id" in out.stderr:  # every job is gone
            return {}
        raise SlurmUnavailable(f"squeue: {out.stderr.strip() or f'exit {out.returncode}'}")
    states = {}
    for line in out.stdout.splitlines():
        job_id, raw_id, state, reason = line.split("|", 3)
        states[job_id] = states[raw_id] = JobState(state.split()[0], reason)
    return states


def is_active(job_id: str | None, states: dict[str, JobState]) -> bool:
    return job_id is not None and job_id in states and states[job_id].active


# ------------------------------------------------------------------ the jobs

def _log_epochs(stage: Stage):
    total = epochs(stage)
    return lambda epoch, log: print(f"{stage.kind} epoch {epoch}/{total} loss {log.get('loss', '-')}", flush=True)


def _use_allocated_cpus() -> None:
    """As many torch threads as the job has CPUs. Without CPU binding on the node, torch would start one per core,
    and jobs sharing a node would oversubscribe it (several times slower on 2 cores shared by 2 jobs)."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus:
        torch.set_num_threads(int(cpus))


class StageJob(submitit.helpers.Checkpointable):
    """Computes one stage; requeued, it resumes from the stage's checkpoint."""

    def __call__(self, stage: Stage, root: str) -> str:
        _use_allocated_cpus()
        store = Store(root)
        checkpoint = store.checkpoint_path(stage)
        if checkpoint.exists() and not store.stage_done(stage):
            epoch = torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"]
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
        _use_allocated_cpus()
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

@dataclass(frozen=True)
class Job:
    job_id: str
    level: int
    what: str  # a stage name, or "run"
    runs: tuple[str, ...]


def jobs_path(store: Store, suite: str, dataset: str) -> Path:
    return store.root / "runs" / suite / dataset / "slurm.json"


def log_dir(store: Store, suite: str, dataset: str) -> Path:
    return store.root / "slurm" / suite / dataset


def read_jobs(store: Store, suite: str, dataset: str) -> dict | None:
    return read_json(jobs_path(store, suite, dataset))


def job_list(info: dict | None) -> list[Job]:
    return [Job(j["job_id"], j["level"], j["what"], tuple(j["runs"])) for j in (info or {}).get("jobs", [])]


def check_idle(store: Store, runs: list[Run]) -> None:
    """Refuse a second submission while the suite's jobs are queued or running: both would compute the same stages."""
    suite, dataset = runs[0].suite, runs[0].dataset
    jobs = job_list(read_jobs(store, suite, dataset))
    try:
        states = queue([j.job_id for j in jobs])
    except SlurmUnavailable as e:
        raise UserError(f"--executor slurm: {e}") from None
    active = [j for j in jobs if is_active(j.job_id, states)]
    if active:
        where = f"--suite {suite} --results-dir {store.root}"
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
    suite, dataset = runs[0].suite, runs[0].dataset
    executor = _executor(profile, log_dir(store, suite, dataset))
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
            raise UserError(f"sbatch refused the jobs of profile {profile.name}: "
                            f"{str(e).strip().splitlines()[-1]}") from None
        raise
    return jobs


def write_jobs(store: Store, runs: list[Run], jobs: list[Job], profile: Profile) -> None:
    suite, dataset = runs[0].suite, runs[0].dataset
    atomic_write_json(jobs_path(store, suite, dataset), {
        "suite": suite, "dataset": dataset, "profile": profile.name, "submitted": provenance.now(),
        "logs": str(log_dir(store, suite, dataset)), "cancelled": None,
        "jobs": [{"job_id": j.job_id, "level": j.level, "what": j.what, "runs": list(j.runs)} for j in jobs],
    })


class WaitStopped(Exception):
    """Waiting ended before the jobs did (timeout or Ctrl-C); the argument is the exit code."""


def execute(runs: list[Run], store: Store, profile: Profile, console: Console, wait: bool = False,
            timeout_min: float | None = None) -> list[dict] | None:
    """Submit the runs; with `wait`, follow them until their jobs are finished and return their records."""
    before = {r.ident: store.record(r) for r in runs}
    jobs = submit(runs, store, profile)
    write_jobs(store, runs, jobs, profile)
    stage_jobs = [j for j in jobs if j.what != "run"]
    console.print(f"submitted {len(jobs)} SLURM jobs ({len(stage_jobs)} stages, {len(runs)} runs) with profile "
                  f"{profile.name}; logs in {log_dir(store, runs[0].suite, runs[0].dataset)}")
    watch_cmd = f"cpep-bench status --suite {runs[0].suite} --results-dir {store.root}"
    if not wait:
        arrays = sorted({j.job_id.split("_")[0] for j in jobs}, key=int)
        console.print(f"job arrays: {' '.join(arrays)}\nwatch them with: {watch_cmd}")
        return None
    try:
        return watch(runs, store, jobs, before, console, timeout_min)
    except KeyboardInterrupt:
        console.print(f"stopped watching; the jobs go on. Watch them with: {watch_cmd}")
        raise WaitStopped(130) from None


def _newly_finished(pending: dict[str, Run], before: dict, store: Store) -> list[dict]:
    """Records that became final since submission (done or failed, and not the previous attempt's); their runs
    leave `pending`."""
    found = []
    for ident, run in list(pending.items()):
        rec = store.record(run)
        if rec and rec["status"] in ("done", "failed") and rec != before[ident]:
            found.append(rec)
            del pending[ident]
    return found


def watch(runs: list[Run], store: Store, jobs: list[Job], before: dict, console: Console,
          timeout_min: float | None) -> list[dict]:
    """Poll the records and squeue until every job is finished; one line per run as its record appears."""
    deadline = time.monotonic() + timeout_min * 60 if timeout_min is not None else None
    pending = {r.ident: r for r in runs}
    records = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("runs", total=len(runs))
        while True:
            states = queue([j.job_id for j in jobs])  # before the records: a job that ends now has written its own
            active = [j for j in jobs if is_active(j.job_id, states)]
            for rec in _newly_finished(pending, before, store):
                progress.console.print(f"{rec['variant']}/seed-{rec['seed']}: {summary(rec)}")
                progress.advance(bar)
                records.append(rec)
            running = sum(states[j.job_id].state in RUNNING for j in active)
            progress.update(bar, description=f"runs (jobs: {running} running, {len(active) - running} queued)")
            if not active or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(POLL_S)
    if active:
        console.print(f"[red]timed out[/red] after {timeout_min:g} min: {len(active)} jobs still queued or running; "
                      f"they go on (cpep-bench status --suite {runs[0].suite} --results-dir {store.root})")
        raise WaitStopped(1)
    logs = log_dir(store, runs[0].suite, runs[0].dataset)
    for ident in pending:
        console.print(f"{ident}: [red]interrupted[/red] its SLURM jobs ended without a record (logs in {logs})")
    return records


# ------------------------------------------------------------------ status and cancel

@dataclass(frozen=True)
class RunStatus:
    ident: str
    dataset: str
    status: str  # queued, running, done, failed, interrupted, cancelled
    detail: str
    slurm: str


def _local_worker_alive(worker: dict) -> bool | None:
    """Whether the process that wrote a `running` record still lives; None when it ran on another host."""
    if worker.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(worker["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _job_label(job: Job) -> str:
    return "evaluation and record" if job.what == "run" else job.what.split("-")[0]


def _record_status(rec: dict, states: dict[str, JobState] | None, info: dict | None) -> tuple[str, str]:
    """(status, detail) from a record of the latest attempt; a `running` one is checked against its worker."""
    if rec["status"] == "done":
        return "done", summary(rec)
    if rec["status"] != "running":
        return rec["status"], rec.get("error") or ""
    worker = rec.get("worker") or {}
    job = worker.get("slurm_job_id")
    alive = (None if states is None else is_active(job, states)) if job else _local_worker_alive(worker)
    if alive is not False:
        return "running", f"on {worker.get('host', '?')}"
    gone = f"SLURM job {job} is gone" if job else f"process {worker.get('pid')} on {worker.get('host')} is gone"
    if job and info and info.get("cancelled"):
        return "cancelled", f"by cpep-bench cancel ({gone})"
    return "interrupted", gone


def _run_status(ident: str, dataset: str, rec: dict | None, jobs: list[Job], states: dict[str, JobState] | None,
                info: dict | None) -> RunStatus:
    """`states` is None when squeue could not be asked: then no job counts as gone."""
    known = states or {}
    mine = sorted((j for j in jobs if ident in j.runs), key=lambda j: j.level)
    active = [j for j in mine if is_active(j.job_id, known)]
    running = [j for j in active if known[j.job_id].state in RUNNING]
    shown = (running or active or mine[-1:] or [None])[0]
    slurm = "" if shown is None else f"{shown.job_id} {known.get(shown.job_id, '?' if states is None else 'gone')}"
    # A record older than the latest submission is the previous attempt's.
    stale = rec is not None and bool(mine) and rec.get("updated", "") < (info or {}).get("submitted", "")
    final = rec is not None and not stale and rec["status"] in ("done", "failed")
    if active and not final:
        status, detail = ("running", _job_label(shown)) if running else ("queued", f"next: {_job_label(shown)}")
    elif rec is not None and not stale:
        status, detail = _record_status(rec, states, info)
    elif states is None:
        status, detail = "unknown", "SLURM could not be asked"
    elif info and info.get("cancelled"):
        status, detail = "cancelled", "by cpep-bench cancel; the next `cpep-bench run` redoes it"
    else:
        status, detail = "interrupted", f"its SLURM jobs ended without a record (logs in {(info or {}).get('logs')})"
    return RunStatus(ident, dataset, status, detail, slurm)


def suite_status(store: Store, suite: str) -> tuple[list[RunStatus], str | None]:
    """Every known run of the suite (a record or a submitted job), and a warning when squeue cannot be asked."""
    rows, warning = [], None
    for data_dir in sorted(p for p in (store.root / "runs" / suite).glob("*") if p.is_dir()):
        dataset = data_dir.name
        records = {}
        for path in sorted(data_dir.glob("*/seed-*.json")):
            rec = read_json(path)
            if rec is not None:
                records[f"{rec['variant']}/seed-{rec['seed']}"] = rec
        info = read_jobs(store, suite, dataset)
        jobs = job_list(info)
        workers = [((r.get("worker") or {}).get("slurm_job_id")) for r in records.values()]
        try:
            states = queue([j.job_id for j in jobs] + [w for w in workers if w])
        except SlurmUnavailable as e:
            states, warning = None, f"SLURM could not be asked: {e}"
        idents = sorted(set(records) | {i for j in jobs for i in j.runs})
        rows += [_run_status(i, dataset, records.get(i), jobs, states, info) for i in idents]
    return rows, warning


STYLE = {"done": "green", "failed": "red", "interrupted": "yellow", "cancelled": "yellow", "unknown": "yellow",
         "running": "cyan", "queued": "blue"}


def show_status(store: Store, suite: str, console: Console) -> list[RunStatus]:
    rows, warning = suite_status(store, suite)
    if not rows:
        console.print(f"suite {suite}: no runs in {store.root}")
        return rows
    several = len({r.dataset for r in rows}) > 1
    table = Table("run", "status", "detail", "SLURM job", title=f"suite {suite} ({store.root})")
    for r in rows:
        style = STYLE.get(r.status, "default")
        table.add_row(f"{r.dataset}/{r.ident}" if several else r.ident, f"[{style}]{r.status}[/{style}]",
                      r.detail, r.slurm)
    console.print(table)
    counts = Counter(r.status for r in rows)
    console.print(", ".join(f"{n} {s}" for s, n in counts.most_common()))
    if warning:
        console.print(f"[yellow]{warning}[/yellow]")
    return rows


def cancel(store: Store, suite: str, console: Console) -> int:
    """scancel the suite's queued and running jobs. Records stay as they are: the next `run` redoes every run that
    is not done, and `status` shows the interrupted ones as cancelled."""
    cancelled, runs = [], set()
    for data_dir in sorted(p for p in (store.root / "runs" / suite).glob("*") if p.is_dir()):
        info = read_jobs(store, suite, data_dir.name)
        jobs = job_list(info)
        try:
            states = queue([j.job_id for j in jobs])
        except SlurmUnavailable as e:
            raise UserError(str(e)) from None
        active = [j for j in jobs if is_active(j.job_id, states)]
        if not active:
            continue
        done = subprocess.run(["scancel", *(j.job_id for j in active)], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise UserError(f"scancel: {(done.stderr.strip().splitlines() or ['exit %d' % done.returncode])[0]}")
        atomic_write_json(jobs_path(store, suite, data_dir.name), {**info, "cancelled": provenance.now()})
        cancelled += active
        runs.update(i for j in active for i in j.runs)
    if cancelled:
        console.print(f"suite {suite}: cancelled {len(cancelled)} SLURM jobs of {len(runs)} runs; run the suite "
                      f"again to redo them")
    else:
        console.print(f"suite {suite}: no queued or running SLURM jobs")
    return len(cancelled)
