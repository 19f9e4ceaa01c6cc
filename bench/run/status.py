"""Each run of a suite: queued, running, done, failed (with its reason), interrupted or cancelled, from the run
records and, for a dataset submitted with --executor slurm, from its jobs file and squeue.

Loads without torch, submitit and timm; a suite run only here needs no SLURM at all.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from bench.run.slurm.watch import RUNNING, Job, JobState, SlurmUnavailable, is_active, job_list, queue, read_jobs
from bench.run.store import Store, read_json


def summary(rec: dict) -> str:
    """A run record's metrics (or failure) in one line."""
    if rec["status"] != "done":
        log = f" (traceback: {rec['error_log']})" if rec.get("error_log") else ""
        return f"[red]failed[/red] {rec['error']}{log}"
    m = rec["metrics"]
    fmt = (lambda k: "-" if m.get(k) is None else f"{m[k]:.3f}")
    return f"LP {fmt('lp_id')}/{fmt('lp_unseen')}  ZS {fmt('zs_id')}/{fmt('zs_unseen')}  (id/unseen)"


@dataclass(frozen=True)
class RunStatus:
    ident: str
    dataset: str
    status: str  # queued, running, done, stale, failed, interrupted, cancelled
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


def stage_progress(store: Store, kind: str, key: str) -> str:
    """The stage's kind and, once it has trained an epoch, how far it is: "align epoch 12/40"."""
    progress = read_json(store.root / "stages" / f"{kind}-{key}" / "progress.json")
    return f"{kind} epoch {progress['epoch']}/{progress['epochs']}" if progress else kind


def _job_label(job: Job, store: Store) -> str:
    return "evaluation and record" if job.what == "run" else stage_progress(store, *job.what.rsplit("-", 1))


def _current_stage(rec: dict, store: Store) -> str | None:
    """The record's first stage that is not finished now (the record lists them as they were at its start)."""
    for stage in rec.get("stages", []):
        if not (store.root / "stages" / f"{stage['kind']}-{stage['key']}" / "meta.json").is_file():
            return stage_progress(store, stage["kind"], stage["key"])
    return None


def _record_status(rec: dict, states: dict[str, JobState] | None, info: dict | None,
                   store: Store) -> tuple[str, str]:
    """(status, detail) from a record of the latest attempt; a `running` one is checked against its worker."""
    if rec["status"] == "done":
        from bench.report.select import code_changed
        why = code_changed(rec)
        return ("stale", f"code changed: {why}; `cpep-bench run` recomputes it") if why else ("done", summary(rec))
    if rec["status"] != "running":
        return rec["status"], rec.get("error") or ""
    worker = rec.get("worker") or {}
    job = worker.get("slurm_job_id")
    alive = (None if states is None else is_active(job, states)) if job else _local_worker_alive(worker)
    if alive is not False:
        where = f"on {worker.get('host', '?')}"
        stage = _current_stage(rec, store)
        return "running", f"{stage} {where}" if stage else where
    gone = f"SLURM job {job} is gone" if job else f"process {worker.get('pid')} on {worker.get('host')} is gone"
    if job and info and info.get("cancelled"):
        return "cancelled", f"by cpep-bench cancel ({gone})"
    return "interrupted", gone


def _run_status(ident: str, dataset: str, rec: dict | None, jobs: list[Job], states: dict[str, JobState] | None,
                info: dict | None, store: Store) -> RunStatus:
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
        label = _job_label(shown, store)
        status, detail = ("running", label) if running else ("queued", f"next: {label}")
    elif rec is not None and not stale:
        status, detail = _record_status(rec, states, info, store)
    elif states is None:
        status, detail = "unknown", "SLURM could not be asked"
    elif info and info.get("cancelled"):
        status, detail = "cancelled", "by cpep-bench cancel; the next `cpep-bench run` redoes it"
    else:
        status, detail = "interrupted", f"its SLURM jobs ended without a record (logs in {(info or {}).get('logs')})"
    return RunStatus(ident, dataset, status, detail, slurm)


def suite_status(store: Store, suite: str, data_id: str | None = None) -> tuple[list[RunStatus], str | None]:
    """Every known run of the suite (a record or a submitted job) on each data identity (those whose
    <dataset>-<key> starts with `data_id`, or contains it after the dash), and a warning when squeue cannot be asked.
    squeue is asked only about SLURM jobs: those of the jobs file, and those the records were written in."""
    rows, warning = [], None
    for data_dir in sorted(p for p in (store.root / "runs" / suite).glob("*") if p.is_dir()):
        dataset = data_dir.name
        if data_id and not (dataset.startswith(data_id) or dataset.partition("-")[2].startswith(data_id)):
            continue
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
        rows += [_run_status(i, dataset, records.get(i), jobs, states, info, store) for i in idents]
    return rows, warning


STYLE = {"done": "green", "stale": "yellow", "failed": "red", "interrupted": "yellow", "cancelled": "yellow", "unknown": "yellow",
         "running": "cyan", "queued": "blue"}


def show_status(store: Store, suite: str, console: Console, data_id: str | None = None) -> list[RunStatus]:
    rows, warning = suite_status(store, suite, data_id)
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
