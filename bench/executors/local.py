"""Runs one after another in this process, with rich progress bars."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.run import runner
from bench.run.planner import Run, Stage, epochs
from bench.run.status import summary
from bench.run.store import Store


def execute(runs: list[Run], store: Store, console: Console, fail_fast: bool = False) -> list[dict]:
    """Every run in order; with `fail_fast`, none after the first that fails."""
    records = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task("runs", total=len(runs))
        current = progress.add_task("", total=1, visible=False)

        def on_stage(stage: Stage):
            if store.stage_done(stage):
                return None
            progress.reset(current, total=epochs(stage), visible=True,
                           description=f"  {stage.kind} (seed {stage.seed})")
            return lambda epoch, log: progress.update(current, completed=epoch)

        for run in runs:
            progress.update(overall, description=f"runs: {run.ident}")
            rec = runner.complete(run, store, on_stage)
            progress.update(current, visible=False)
            progress.advance(overall)
            progress.console.print(f"{run.ident}: {summary(rec)}")
            records.append(rec)
            if fail_fast and rec["status"] != "done":
                break
    return records
