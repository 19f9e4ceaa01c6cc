"""What SLURM knows of a suite's jobs (the jobs file, squeue), following them until they end, and cancelling them.

Loads without submitit and torch: `status` asks it through the slurm executor plug-in.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench.plugins import Seen
from bench.run import provenance
from bench.run.planner import Run
from bench.run.progress import SweepProgress
from bench.run.slurm.cluster import never_starts
from bench.run.store import Store, atomic_write_json, read_json
from cpep.errors import UserError

# Job states after which a job does no more work; a job squeue no longer knows counts as finished too.
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED", "SPECIAL_EXIT", "REVOKED"}
RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"}
POLL_S = 2.0
# The line a job's error log gets when a line of the profile's setup failed (bench.run.slurm.submit.guarded_setup).
SETUP_FAILED = "cpep-bench: the profile's setup failed"


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

    @property
    def never(self) -> bool:
        """Pending for a reason that waiting does not cure."""
        return self.state == "PENDING" and never_starts(self.reason)

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


def setup_failure(store: Store, suite: str, data_dir: str, job_ids: list[str]) -> str | None:
    """Where one of these jobs says that the profile's setup failed: the line, and the log it is in."""
    for job_id in job_ids:
        for log in sorted(log_dir(store, suite, data_dir).glob(f"{job_id}_*log.err")):
            found = [line for line in log.read_text(errors="replace").splitlines() if line.startswith(SETUP_FAILED)]
            if found:
                out = log.with_name(log.name.removesuffix(".err") + ".out")
                return (f"{found[-1].removeprefix('cpep-bench: ')} in SLURM job {job_id}; its output is in {out} "
                        f"and {log}")
    return None


def _why_gone(store: Store, suite: str, data_dir: str, jobs: list[Job], logs: str) -> str:
    return (setup_failure(store, suite, data_dir, [j.job_id for j in jobs]) or
            f"its SLURM jobs ended without a record (logs in {logs})")


def known(store: Store, suite: str, data_dir: str, sweep: dict) -> dict[str, Seen]:
    """What SLURM knows of the sweep's runs to do: the state of each run's current job (running, else queued,
    else the last), or why its jobs can never start or ended without a record."""
    info = read_jobs(store, suite, data_dir) or {}
    jobs = job_list(info)
    try:
        states = queue([j.job_id for j in jobs])
    except SlurmUnavailable as e:
        raise UserError(f"SLURM could not be asked: {e}") from None
    found = {}
    for entry in (r for r in sweep["runs"] if r["todo"]):
        mine = sorted((j for j in jobs if entry["run"] in j.runs), key=lambda j: j.level)
        active = [j for j in mine if is_active(j.job_id, states)]
        running = [j for j in active if states[j.job_id].state in RUNNING]
        never = [j for j in active if states[j.job_id].never]
        shown = (running or active or mine[-1:] or [None])[0]
        job = "" if shown is None else f"{shown.job_id} {states.get(shown.job_id, 'gone')}"
        if never:
            found[entry["run"]] = Seen("never", job, f"SLURM job {never[0].job_id} can never start: "
                                                     f"{states[never[0].job_id].reason}")
        elif active:
            found[entry["run"]] = Seen("running" if running else "queued", job)
        elif info.get("cancelled"):
            found[entry["run"]] = Seen("cancelled", job, "by cpep-bench cancel; the next `cpep-bench run` redoes it")
        else:
            found[entry["run"]] = Seen("ended", job, _why_gone(store, suite, data_dir, mine, info.get("logs", "?")))
    return found


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
    """Poll the records and squeue until every job is finished: the runs' progress (bench.run.progress), a line
    per run as its record appears. A job that SLURM says can never start stops the watch (UserError)."""
    suite, data_dir = runs[0].suite, runs[0].data_dir
    where = f"--suite {suite} --runs-dir {store.root}"
    deadline = time.monotonic() + timeout_min * 60 if timeout_min is not None else None
    pending = {r.ident: r for r in runs}
    records = []
    with SweepProgress(console, store, runs, None) as progress:
        while True:
            states = queue([j.job_id for j in jobs])  # before the records: a job that ends now has written its own
            active = [j for j in jobs if is_active(j.job_id, states)]
            for rec in _newly_finished(pending, before, store):
                progress.finished(rec)
                records.append(rec)
            never = next((j for j in active if states[j.job_id].never), None)
            if never is not None:
                raise UserError(f"SLURM job {never.job_id} ({never.what}) can never start: "
                                f"{states[never.job_id].reason}; stop the sweep with `cpep-bench cancel {where}` and "
                                f"fix the profile")
            running = len({j.job_id for j in active if states[j.job_id].state in RUNNING})
            progress.show(f"SLURM jobs: {running} running, {len({j.job_id for j in active}) - running} queued")
            if not active or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(POLL_S)
    if active:
        console.print(f"[red]timed out[/red] after {timeout_min:g} min: {len({j.job_id for j in active})} jobs still "
                      f"queued or running; they go on (cpep-bench status {where})")
        raise WaitStopped(1)
    logs = log_dir(store, suite, data_dir)
    for ident in pending:
        why = _why_gone(store, suite, data_dir, [j for j in jobs if ident in j.runs], str(logs))
        console.print(f"{ident}: [red]interrupted[/red] {why}", highlight=False)
    return records


# ------------------------------------------------------------------ cancelling them

def cancel(store: Store, suite: str, data_dir: str, console: Console) -> int:
    """scancel the queued and running jobs of the suite's latest submission on one data identity. Records stay as
    they are: the next `run` redoes every run that is not done, and `status` shows the stopped ones as cancelled."""
    info = read_jobs(store, suite, data_dir)
    jobs = job_list(info)
    try:
        states = queue([j.job_id for j in jobs])
    except SlurmUnavailable as e:
        raise UserError(str(e)) from None
    active = [j for j in jobs if is_active(j.job_id, states)]
    if not active:
        return 0
    ids = sorted({j.job_id for j in active})
    done = subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise UserError(f"scancel: {(done.stderr.strip().splitlines() or ['exit %d' % done.returncode])[0]}")
    atomic_write_json(jobs_path(store, suite, data_dir), {**info, "cancelled": provenance.now()})
    runs = {i for j in active for i in j.runs}
    console.print(f"suite {suite}: cancelled {len(ids)} SLURM jobs of {len(runs)} runs; run the suite again to redo "
                  f"them")
    return len(ids)
