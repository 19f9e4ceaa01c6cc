"""A sweep: the runs of a selection not done yet, computed by an executor (`execute`), and what `run` set out to do,
written down for `status`, `cancel` and the progress display: per data identity,
<runs>/runs/<suite>/<dataset>-<data key>/sweep.json holds every run of the selection (those already done too),
which are to do, each run's stages in order (kind, key, epochs, inputs), the executor and the process that runs it.

A run not started yet is `queued` in `status` because the sweep file lists it; the stages let status and the
progress bars estimate the time left without loading the suite's plug-ins.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from rich.console import Console

from bench.run import provenance, runner
from bench.run.planner import Run, epochs
from bench.run.store import Store, atomic_write_json, read_json
from cpep.errors import DiskFull, UserError


def sweep_path(store: Store, suite: str, data_dir: str) -> Path:
    return store.root / "runs" / suite / data_dir / "sweep.json"


def describe(runs: list[Run], todo: list[Run], executor: str, parallel: int | None) -> dict:
    """The sweep file's content for these runs (all of one data identity)."""
    doing = {r.ident for r in todo}
    return {
        "suite": runs[0].suite, "data": runs[0].data_dir, "executor": executor, "parallel": parallel,
        "started": provenance.now(), "started_s": time.time(), "host": socket.gethostname(), "pid": os.getpid(),
        "cancelled": None,
        "runs": [{"run": r.ident, "todo": r.ident in doing,
                  "stages": [{"name": s.name, "kind": s.kind, "epochs": epochs(s),
                              "inputs": [f"{kind}-{key}" for kind, key in s.inputs]} for s in r.stages]}
                 for r in runs],
    }


def write(store: Store, runs: list[Run], todo: list[Run], executor: str, parallel: int | None) -> dict:
    """Write the sweep file of each data identity among `runs`; returns the sweeps by data directory."""
    written = {}
    for data_dir in dict.fromkeys(r.data_dir for r in runs):
        mine = [r for r in runs if r.data_dir == data_dir]
        sweep = describe(mine, [r for r in todo if r.data_dir == data_dir], executor, parallel)
        atomic_write_json(sweep_path(store, mine[0].suite, data_dir), sweep)
        written[data_dir] = sweep
    return written


def read(store: Store, suite: str, data_dir: str) -> dict | None:
    return read_json(sweep_path(store, suite, data_dir))


def restore(store: Store, suite: str, data_dir: str, earlier: dict | None) -> None:
    """Put back the sweep file a refused sweep replaced (or remove it, where there was none)."""
    if earlier is None:
        sweep_path(store, suite, data_dir).unlink(missing_ok=True)
    else:
        atomic_write_json(sweep_path(store, suite, data_dir), earlier)


def mark_cancelled(store: Store, sweep: dict) -> None:
    atomic_write_json(sweep_path(store, sweep["suite"], sweep["data"]), {**sweep, "cancelled": provenance.now()})


def data_dirs(store: Store, suite: str, data_id: str | None = None) -> list[str]:
    """The suite's data directories (<dataset>-<key>), those whose name starts with `data_id` or whose key does."""
    found = sorted(p.name for p in (store.root / "runs" / suite).glob("*") if p.is_dir())
    return [d for d in found if not data_id or d.startswith(data_id) or d.partition("-")[2].startswith(data_id)]


def execute(runs: list[Run], store: Store, executor, console: Console, force: bool, fail_fast: bool) -> bool:
    """The runs not done yet (all, with `force`), by the executor, after writing the sweep file; False when one
    failed or ended without a record (said in a line)."""
    todo = [r for r in runs if force or not store.run_done(r)]
    stale = sum(r.stale for r in runs)
    console.print(f"suite {runs[0].suite}: {len(runs)} runs, {len(runs) - len(todo)} already done, "
                  f"{len(todo)} to do{f', {stale} reusing stages of older code' if stale else ''}; "
                  f"results in {store.root}")
    if not todo:
        return True
    runner.prepare(todo, store, force)
    earlier = {d: read(store, runs[0].suite, d) for d in {r.data_dir for r in runs}}
    write(store, runs, todo, executor.name, executor.parallel())
    try:
        records = executor.execute(todo, store, console, fail_fast)
    except UserError as e:  # refused before any work (sbatch said no): the sweep files say what they said
        if not isinstance(e, DiskFull):
            for data_dir, old in earlier.items():
                restore(store, runs[0].suite, data_dir, old)
        raise
    if records is None:  # handed to a scheduler that goes on without this process
        return True
    failed = [r for r in records if r["status"] != "done"]
    missing = len(todo) - len(records)
    if not failed and not missing:
        return True
    parts = [f"{len(failed)} of {len(todo)} runs failed; tracebacks in each failed stage's error.log"] if failed else []
    parts += [f"{missing} of {len(todo)} runs ended without a record, for the reasons above"] if missing else []
    console.print(f"[red]{'; '.join(parts)}[/red] (see `cpep-bench status --suite {runs[0].suite} --runs-dir "
                  f"{store.root}`)")
    return False
