"""Runs one after another in this process, with rich progress bars."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import runner, stages
from bench.planner import Run, Stage
from bench.store import Store


def summary(rec: dict) -> str:
    if rec["status"] != "done":
        return f"[red]failed[/red] {rec['error']}"
    m = rec["metrics"]
    fmt = (lambda k: "-" if m.get(k) is None else f"{m[k]:.3f}")
    return f"LP {fmt('lp_id')}/{fmt('lp_unseen')}  ZS {fmt('zs_id')}/{fmt('zs_unseen')}  (id/unseen)"


def execute(runs: list[Run], store: Store, console: Console) -> list[dict]:
    records = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task("runs", total=len(runs))
        current = progress.add_task("", total=1, visible=False)

        def on_stage(stage: Stage):
            if store.stage_done(stage):
                return None
            progress.reset(current, total=stages.epochs(stage), visible=True,
                           description=f"  {stage.kind} (seed {stage.seed})")
            return lambda epoch, log: progress.update(current, completed=epoch)

        for run in runs:
            progress.update(overall, description=f"runs: {run.ident}")
            rec = runner.complete(run, store, on_stage)
            progress.update(current, visible=False)
            progress.advance(overall)
            progress.console.print(f"{run.ident}: {summary(rec)}")
            records.append(rec)
    return records
