"""Runs on this machine: one after another in this process (the default), or with --jobs k, k independent stages of
one level of the stage graph side by side, each in its own process on its share of the CPUs (bench.run.side_by_side),
then the next level; evaluations too. A run's record is written as soon as its last stage has ended."""

from __future__ import annotations

from rich.console import Console

from bench import plugins
from bench.run import runner
from bench.run.planner import Run, Stage, levels, unique_stages
from bench.run.progress import SweepProgress
from bench.run.side_by_side import SideBySide
from bench.run.store import Store
from cpep.errors import UserError

POLL_S = 0.5


class Executor(plugins.Executor):
    takes = ("jobs",)

    @property
    def jobs(self) -> int:
        return (self.options or {}).get("jobs", 1)

    def check(self) -> None:
        if self.jobs < 1:
            raise UserError(f"--jobs {self.jobs}: at least 1 stage at a time")

    def parallel(self) -> int:
        return self.jobs

    def execute(self, runs: list[Run], store: Store, console: Console, fail_fast: bool) -> list[dict]:
        with SweepProgress(console, store, runs, self.jobs) as progress:
            if self.jobs == 1:
                return one_by_one(runs, store, progress, fail_fast)
            return side_by_side(runs, store, progress, self.jobs, fail_fast)


def one_by_one(runs: list[Run], store: Store, progress: SweepProgress, fail_fast: bool) -> list[dict]:
    """Every run in order, in this process; with `fail_fast`, none after the first that fails."""
    records = []

    def on_stage(stage: Stage):
        progress.show(force=True)
        return lambda epoch, log: progress.show(force=epoch == 1)

    for run in runs:
        rec = runner.complete(run, store, on_stage)
        progress.finished(rec)
        records.append(rec)
        if fail_fast and rec["status"] != "done":
            break
    return records


def side_by_side(runs: list[Run], store: Store, progress: SweepProgress, k: int, fail_fast: bool) -> list[dict]:
    """Level by level, k stages at a time in worker processes; each run's record once its stages have ended. With
    `fail_fast`, no stage starts after one failed (those computing end first)."""
    records: list[dict] = []
    pending = list(runs)
    ended: set[str] = set()  # stages done or failed
    started: set[str] = set()  # runs marked running
    workers = SideBySide(k, store)

    def settle() -> None:
        """Write the record of every run whose stages have all ended."""
        for run in [r for r in pending if all(s.name in ended for s in r.stages)]:
            pending.remove(run)
            rec = runner.complete(run, store)  # its stages are done or failed: this only writes the record
            progress.finished(rec)
            records.append(rec)

    def start(stage: Stage) -> None:
        for run in pending:
            if run.ident not in started and stage.name in {s.name for s in run.stages}:
                runner.mark_running(run, store)
                started.add(run.ident)
        workers.start(stage)

    todo = unique_stages(pending)
    ended.update(s.name for s in todo if store.stage_done(s))
    failed = False
    try:
        for level in levels([s for s in todo if s.name not in ended]):
            queue = list(level)
            while queue or workers.busy:
                while queue and workers.free and not (fail_fast and failed):
                    stage = queue.pop(0)
                    if any(store.failure(kind, key) for kind, key in stage.inputs):
                        ended.add(stage.name)  # fails its runs through its input's failure, computing nothing
                        continue
                    start(stage)
                if fail_fast and failed:
                    queue.clear()
                for stage, failure in workers.wait(POLL_S):
                    ended.add(stage.name)
                    failed = failed or failure is not None
                settle()
                progress.show()
            if fail_fast and failed:
                break
    finally:
        workers.stop()
    settle()
    return records
