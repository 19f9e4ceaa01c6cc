"""The progress of a sweep as it computes, for the local executor and `run --wait`.

On a terminal: a bar for the runs (done of all, and the time the remaining stages take at the rates so far) and one
per stage computing (epoch of all, latest loss, elapsed, time left). Elsewhere (a log file, CI): a line when a
stage has trained its first epoch, then at most one line a minute, naming every stage computing. Everything comes
from the files the stages write (bench.run.eta), so stages computed in other processes or on other machines show
as those computed here.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from bench.run import sweep
from bench.run.eta import StageNow, Tracker, clock
from bench.run.planner import Run
from bench.run.status import summary
from bench.run.store import Store

LINE_EVERY_S = 60.0  # at most one progress line a minute off a terminal
REFRESH_S = 0.2      # the files are read again at most this often


class SweepProgress:
    """with SweepProgress(console, store, runs, parallel) as progress: progress.show() while stages compute,
    progress.finished(record) as each run ends."""

    def __init__(self, console: Console, store: Store, runs: list[Run], parallel: int | None):
        described = sweep.describe(runs, runs, "", parallel)["runs"]
        seeds = {s.name: s.seed for r in runs for s in r.stages}
        self.stages = {s["name"]: {**s, "seed": seeds[s["name"]]} for r in described for s in r["stages"]}
        self.console, self.parallel, self.total, self.done = console, parallel, len(runs), 0
        self.tracker = Tracker(store, self.stages)
        self.bars: Progress | None = None
        self.tasks: dict[str, int] = {}
        self.announced: set[str] = set()
        self.last_line, self.last_read = time.monotonic(), 0.0

    def __enter__(self) -> SweepProgress:
        if self.console.is_terminal:
            self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), console=self.console, transient=False)
            self.bars.start()
            self.runs_task = self.bars.add_task("runs", total=self.total, info="")
        return self

    def __exit__(self, *exc) -> None:
        if self.bars is not None:
            self.bars.stop()

    def _stage_text(self, s: StageNow) -> str:
        loss = f"loss {s.loss:.4g}, " if s.loss is not None else ""
        return f"{loss}{clock(s.elapsed)} elapsed, ETA {clock(self.tracker.left(s.name))}"

    def show(self, jobs: str = "", force: bool = False) -> None:
        """Read the stages' files again (at most every REFRESH_S unless `force`) and show where they are;
        `jobs`: a word on the jobs behind them, e.g. SLURM's counts."""
        if not force and time.monotonic() - self.last_read < REFRESH_S:
            return
        self.last_read = time.monotonic()
        now = self.tracker.refresh().now
        computing = [s for s in now.values() if s.state == "computing"]
        eta = f"ETA {clock(self.tracker.sweep_left(self.parallel))}" + (f"; {jobs}" if jobs else "")
        if self.bars is not None:
            self.bars.update(self.runs_task, info=eta)
            for s in computing:
                if s.name not in self.tasks:
                    self.tasks[s.name] = self.bars.add_task(f"  {s.kind} (seed {self.stages[s.name]['seed']})",
                                                            total=s.epochs, info="")
                self.bars.update(self.tasks[s.name], completed=s.epoch, info=self._stage_text(s))
            for name in [n for n in self.tasks if n not in {s.name for s in computing}]:
                self.bars.remove_task(self.tasks.pop(name))
            return
        fresh = [s for s in computing if s.epoch >= 1 and s.name not in self.announced]
        if fresh or (computing and time.monotonic() - self.last_line >= LINE_EVERY_S):
            self.announced.update(s.name for s in fresh)
            self.last_line = time.monotonic()
            stages = "; ".join(f"{s.kind} (seed {self.stages[s.name]['seed']}) " +
                               (f"epoch {s.epoch}/{s.epochs}, {self._stage_text(s)}" if s.epoch else
                                f"starting, {clock(s.elapsed)} elapsed") for s in computing)
            self.console.print(f"{stages} | runs {self.done}/{self.total} done, {eta}", highlight=False)

    def finished(self, rec: dict) -> None:
        """A run ended: its line, and one more run done."""
        self.done += 1
        if self.bars is not None:
            self.bars.advance(self.runs_task)
        self.console.print(f"{rec['variant']}/seed-{rec['seed']}: {summary(rec)}")
        self.show(force=True)
