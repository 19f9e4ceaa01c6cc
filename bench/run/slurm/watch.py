"""What SLURM knows of a suite's jobs (the jobs file, squeue), following them until they end, and cancelling them.

bench.run.status reads jobs through this module, which therefore loads without submitit and torch.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.run import provenance
from bench.run.planner import Run
from bench.run.store import Store, atomic_write_json, read_json
from cpep.errors import UserError

# Job states after which a job does no more work; a job squeue no longer knows counts as finished too.
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED", "SPECIAL_EXIT", "REVOKED"}
RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"}
POLL_S = 2.0


# ------------------------------------------------------------------ the jobs file of a submission

@dataclass(frozen=True)
class Job:
    job_id: str
    level: int
    what: str  # a stage name, or "run"
    runs: tuple[str, ...]


def jobs_path(store: Store, suite: str, data_dir: str) -> Path:
    return store.root / "runs" / suite / data_dir / "slurm.json"


def log_dir(store: Store, suite: str, data_dir: str) -> Path:
    return store.root / "slurm" / suite / data_dir


def read_jobs(store: Store, suite: str, data_dir: str) -> dict | None:
    return read_json(jobs_path(store, suite, data_dir))


def job_list(info: dict | None) -> list[Job]:
    return [Job(j["job_id"], j["level"], j["what"], tuple(j["runs"])) for j in (info or {}).get("jobs", [])]


class WaitStopped(Exception):
    """Waiting ended before the jobs did (timeout or Ctrl-C); the argument is the exit code."""


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


# ------------------------------------------------------------------ following the jobs

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
    from bench.run.status import stage_progress, summary  # bench.run.status imports this module

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
            running = [j for j in active if states[j.job_id].state in RUNNING]
            training = [stage_progress(store, *j.what.rsplit("-", 1)) for j in running if j.what != "run"]
            now = f": {', '.join(training)}" if training else ""
            progress.update(bar, description=f"runs (jobs: {len(running)} running{now}, "
                                             f"{len(active) - len(running)} queued)")
            if not active or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(POLL_S)
    if active:
        console.print(f"[red]timed out[/red] after {timeout_min:g} min: {len(active)} jobs still queued or running; "
                      f"they go on (cpep-bench status --suite {runs[0].suite} --runs-dir {store.root})")
        raise WaitStopped(1)
    logs = log_dir(store, runs[0].suite, runs[0].data_dir)
    for ident in pending:
        console.print(f"{ident}: [red]interrupted[/red] its SLURM jobs ended without a record (logs in {logs})")
    return records


# ------------------------------------------------------------------ cancelling them

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
