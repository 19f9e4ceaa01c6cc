"""Each run of a suite: queued, running, done, stale, failed (with its reason), interrupted, cancelled or blocked,
with the stage it is at, that stage's epoch, loss and elapsed time, and the time its remaining stages take.

From the run records, the sweep file `run` writes (bench.run.sweep: every run it set out to do, so that runs not
started yet are listed, queued), the stages' progress files (bench.run.eta), and what the sweep's executor knows
beyond them (bench.plugins.Executor.known: its processes or jobs). Loads without torch; needs no executor but the
one a sweep names.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from bench import plugins
from bench.run import sweep as sweeps
from bench.run.eta import StageNow, Tracker, clock
from bench.run.store import Store, read_json
from cpep.errors import UserError


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
    status: str  # queued, running, done, stale, failed, interrupted, cancelled, blocked, unknown
    detail: str
    job: str = ""        # the executor's word on its current job
    stage: str = ""      # the stage it is at (queued, running)
    epoch: str = ""      # "12/40" once that stage has trained an epoch
    loss: str = ""
    elapsed: str = ""    # of the stage's attempt (running), or of the run's computation (done)
    eta: str = ""        # its remaining stages, one after another at the measured rates


ACTIVE = ("queued", "running")


def _alive(worker: dict) -> bool | None:
    """Whether the process that wrote a `running` record lives; None when it ran on another host."""
    if worker.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(worker["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _final(rec: dict) -> tuple[str, str]:
    if rec["status"] == "done":
        from bench.report.select import code_changed
        why = code_changed(rec)
        return ("stale", f"code changed: {why}; `cpep-bench run` recomputes it") if why else ("done", summary(rec))
    return rec["status"], rec.get("error") or ""


def _state(rec: dict | None, fresh: bool, seen: plugins.Seen | None) -> tuple[str, str]:
    """(status, detail) of a run from its record (`fresh`: of the current attempt) and its executor's word (None
    when there is none: the run is in no sweep to do, or its executor could not be asked)."""
    if rec is not None and fresh and rec["status"] != "running":
        return _final(rec)
    running = rec is not None and fresh
    if seen is None:
        if not running:
            return "unknown", "no record of this attempt, and its executor could not be asked"
        worker = rec.get("worker") or {}
        if _alive(worker) is False:
            return "interrupted", f"process {worker.get('pid')} on {worker.get('host')} is gone"
        return "running", f"on {worker.get('host', '?')}"
    if seen.state == "never":
        return "blocked", seen.why
    if seen.state in ACTIVE:
        return ("running" if seen.state == "running" or running else "queued"), ""
    return ("cancelled" if seen.state == "cancelled" else "interrupted"), seen.why


def _progress(row: RunStatus, stages: list[dict], tracker: Tracker) -> RunStatus:
    """The row with its current stage (the first not done), that stage's progress and the run's time left."""
    now = [tracker.now[s["name"]] for s in stages]
    current: StageNow | None = next((s for s in now if s.state != "done"), None)
    if current is None:
        return row
    left = tracker.total_left([s.name for s in now])
    computing = current.state == "computing"
    where = f"on {current.worker['host']}" if computing and current.worker and row.status == "running" else ""
    return RunStatus(**{**row.__dict__, "stage": current.kind, "detail": row.detail or where,
                        "epoch": f"{current.epoch}/{current.epochs}" if computing and current.epoch else "",
                        "loss": f"{current.loss:.4g}" if computing and current.loss is not None else "",
                        "elapsed": clock(current.elapsed) if computing else "", "eta": clock(left)})


def _executor_view(sweep: dict, store: Store, suite: str, data_dir: str) -> tuple[dict, str | None]:
    try:
        executor = plugins.get("executor", sweep["executor"])
        return executor.known(store, suite, data_dir, sweep), None
    except UserError as e:
        return {}, f"{data_dir}: {e}"


@dataclass
class SuiteStatus:
    rows: list[RunStatus]
    warnings: list[str]
    left: list[str]  # per sweep with work left: its time left, in words


def suite_status(store: Store, suite: str, data_id: str | None = None) -> tuple[list[RunStatus], str | None]:
    """Every run of the suite (from its sweep files and records), and a warning when an executor could not be
    asked."""
    found = full_status(store, suite, data_id)
    return found.rows, "; ".join(found.warnings) or None


def full_status(store: Store, suite: str, data_id: str | None = None) -> SuiteStatus:
    out = SuiteStatus([], [], [])
    for data_dir in sweeps.data_dirs(store, suite, data_id):
        records = {}
        for path in sorted((store.root / "runs" / suite / data_dir).glob("*/seed-*.json")):
            rec = read_json(path)
            if rec is not None:
                records[f"{rec['variant']}/seed-{rec['seed']}"] = rec
        sweep = sweeps.read(store, suite, data_dir)
        planned = {r["run"]: r for r in (sweep or {}).get("runs", [])}
        seen, warning = _executor_view(sweep, store, suite, data_dir) if sweep else ({}, None)
        out.warnings += [warning] if warning else []
        stages = {s["name"]: s for r in planned.values() for s in r["stages"]}
        tracker = Tracker(store, stages).refresh()
        for ident in sorted(set(records) | set(planned)):
            rec, entry = records.get(ident), planned.get(ident)
            todo = entry is not None and entry["todo"]
            fresh = rec is not None and (not todo or rec.get("updated", "") >= sweep["started"])
            mine = seen.get(ident) if todo else None
            status, detail = _state(rec, fresh, mine)
            elapsed = clock(rec.get("seconds")) if status in ("done", "stale") else ""
            row = RunStatus(ident, data_dir, status, detail, mine.job if mine else "", elapsed=elapsed)
            out.rows.append(_progress(row, entry["stages"], tracker) if status in ACTIVE and entry else row)
        if sweep and any(r.status in ACTIVE for r in out.rows if r.dataset == data_dir):
            left = tracker.sweep_left(sweep.get("parallel"))
            at_once = f"{sweep['parallel']} at a time" if sweep.get("parallel") else "as many at once as can start"
            out.left.append(f"{data_dir}: the remaining stages take {clock(left)} at the rates so far ({at_once})"
                            if left is not None else f"{data_dir}: time left unknown until a stage of each kind has "
                                                     f"trained an epoch")
    return out


STYLE = {"done": "green", "stale": "yellow", "failed": "red", "interrupted": "yellow", "cancelled": "yellow",
         "unknown": "yellow", "running": "cyan", "queued": "blue", "blocked": "red"}


def render(found: SuiteStatus, suite: str, store: Store):
    """The status table and its summary lines, as one rich renderable."""
    from rich.console import Group
    several = len({r.dataset for r in found.rows}) > 1
    table = Table("run", "status", "stage", "epoch", "loss", "elapsed", "ETA", "detail", "job",
                  title=f"suite {suite} ({store.root})")
    for r in found.rows:
        style = STYLE.get(r.status, "default")
        table.add_row(f"{r.dataset}/{r.ident}" if several else r.ident, f"[{style}]{r.status}[/{style}]", r.stage,
                      r.epoch, r.loss, r.elapsed, r.eta, r.detail, r.job)
    counts = Counter(r.status for r in found.rows)
    lines = [", ".join(f"{n} {s}" for s, n in counts.most_common()), *found.left,
             *(f"[yellow]{w}[/yellow]" for w in found.warnings)]
    return Group(table, *lines)


def show_status(store: Store, suite: str, console: Console, data_id: str | None = None,
                every: float | None = None) -> list[RunStatus]:
    """Print the status once; with `every` (seconds), keep it on screen, refreshed, until no run is queued or
    running (or Ctrl-C)."""
    found = full_status(store, suite, data_id)
    if not found.rows:
        console.print(f"suite {suite}: no runs in {store.root}")
        return found.rows
    if every is None:
        console.print(render(found, suite, store))
        return found.rows
    from rich.live import Live
    with Live(render(found, suite, store), console=console, auto_refresh=False) as live:
        try:
            while any(r.status in ACTIVE for r in found.rows):
                time.sleep(every)
                found = full_status(store, suite, data_id)
                live.update(render(found, suite, store), refresh=True)
        except KeyboardInterrupt:  # stops watching, nothing else
            pass
    return found.rows
