"""`cpep-bench coverage`: the command's options; bench.report.coverage does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bench.options import RunsDir, console, runs_store
from cpep.errors import UserError


def coverage(
    replications: int = typer.Option(1000, min=10, help="Simulated data sets per cell of the grid."),
    resamples: int = typer.Option(1000, min=100, help="Bootstrap resamples per interval in the simulation."),
    seeds: str = typer.Option("2,3,5,10,20", help="Numbers of seeds to simulate, comma-separated."),
    seed_sd: str = typer.Option("0,0.015,0.03,0.05", help="Standard deviations of a training run's effect on a "
                                                          "variant's scores, comma-separated."),
    user_sd: str = typer.Option("0.02,0.03,0.1", help="Standard deviations of a user's effect on every variant's "
                                                      "scores, comma-separated."),
    intervals: Optional[str] = typer.Option(None, help="Only these intervals (of t, bootstrap, bca; comma-separated), "
                                                       "and no rejection rates: to measure one interval more finely."),
    out: Optional[Path] = typer.Option(None, help="Directory for coverage.csv and coverage.md (default: "
                                                  "<runs-dir>/coverage)."),
    docs: Optional[Path] = typer.Option(None, help="Also replace the block between the coverage markers of this "
                                                   "Markdown file (docs/statistics.md) with the tables."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Measure how often each interval the report prints covers the true value, and how often each test rejects
    with no effect, on simulated seed x user scores over a grid of designs (users per seed or the same users),
    seeds, seed sd and user sd. Writes the tables docs/statistics.md shows."""
    from bench.report import coverage as simulation
    from bench.report.stats import CI_METHODS
    methods = tuple(intervals.split(",")) if intervals else ()
    unknown = [m for m in methods if m not in CI_METHODS]
    if unknown:
        raise UserError(f"--intervals: {', '.join(unknown)} is not an interval the report prints "
                        f"({', '.join(CI_METHODS)})")
    counts = numbers("--seeds", seeds, int)
    if min(counts) < 2:
        raise UserError(f"--seeds: an interval needs 2 seeds or more, not {min(counts)}")
    seed_sds, user_sds = numbers("--seed-sd", seed_sd, float), numbers("--user-sd", user_sd, float)
    if min(seed_sds + user_sds) < 0:
        raise UserError("--seed-sd and --user-sd take standard deviations, 0 or more")
    if docs and methods:
        raise UserError("--docs replaces the full tables: leave --intervals out")
    if docs and simulation.BEGIN not in docs.read_text():
        raise UserError(f"{docs} has no '{simulation.BEGIN}' ... '{simulation.END}' block to replace")
    out = out or runs_store(runs_dir).root / "coverage"
    out.mkdir(parents=True, exist_ok=True)
    cells = simulation.grid(seeds=counts, seed_sds=seed_sds, user_sds=user_sds)
    frame, seconds = simulation.timed(cells, replications, resamples,
                                      lambda cell: console.print(f"{cell}", highlight=False), methods)
    command = (f"cpep-bench coverage --replications {replications} --resamples {resamples} --seeds {seeds} "
               f"--seed-sd {seed_sd} --user-sd {user_sd}" + (f" --intervals {intervals}" if intervals else ""))
    table = simulation.markdown(frame, simulation.about(replications, resamples, seconds, command))
    frame.to_csv(out / "coverage.csv", index=False)
    (out / "coverage.md").write_text(table)
    if docs:  # read again: the file may have changed while the simulation ran
        docs.write_text(simulation.splice(docs.read_text(), table))
    console.print(table, highlight=False)
    differ = {key: n for key, n in simulation.served_from(frame).items() if n != simulation.in_use(*key)}
    if differ:
        console.print(f"note: the seeds the report needs (bench/report/stats.py MIN_SEEDS, FRACTION_SEEDS) differ "
                      f"from these measurements: {differ}", style="yellow")


def numbers(option: str, text: str, kind) -> tuple:
    """A comma-separated list of numbers, or one line naming the option."""
    try:
        return tuple(kind(x) for x in text.split(","))
    except ValueError:
        raise UserError(f"{option} takes comma-separated numbers, not {text!r}") from None
