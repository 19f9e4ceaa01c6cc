"""`cpep-bench report`: the command's options; bench.report.build does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bench import suites
from bench.options import RunsDir, console, runs_store


def report(
    suite: str = typer.Option(..., "--suite", "-s", help="Suite name or suite TOML file."),
    data: Optional[str] = typer.Option(None, help="Report the records on this dataset (synthetic, emg2pose, "
                                                  "ninapro_db2, or a plug-in's)."),
    data_root: Optional[Path] = typer.Option(None, help="Report the records of the data read from this directory."),
    data_id: Optional[str] = typer.Option(None, help="Report the records of this data identity: its key, or "
                                                     "<dataset>-<key>, as an error listing them names it. A report "
                                                     "holds one data identity; with records of several, choose."),
    reuse_stale: bool = typer.Option(False, "--reuse-stale",
                                     help="Count results computed by older code, marked (by default they are left "
                                          "out and listed)."),
    out: Optional[Path] = typer.Option(None, help="Directory for the tables and figures "
                                                  "(default: <runs-dir>/report/<suite>/<dataset>-<key>)."),
    format_: str = typer.Option("md,tex,csv,html", "--format",
                                help="Files to write: any of md, tex, csv, html (report.html: one self-contained "
                                     "page); figures are always written, as PNG and SVG."),
    ci: str = typer.Option("t", help="Confidence intervals: t (Student t over the seeds' estimates, plus the users' "
                                     "variance where every seed tests the same users), bootstrap (hierarchical "
                                     "percentile: seeds, then users; 10 seeds or more) or bca (BCa over the seeds' "
                                     "estimates; 10 seeds or more, users drawn per seed). docs/statistics.md has "
                                     "their measured coverage."),
    level: float = typer.Option(0.95, help="Confidence level of the intervals."),
    alpha: Optional[float] = typer.Option(None, help="Level of the tests behind the claims' verdicts (before and "
                                                     "after Holm's adjustment) and the tables' significance marks "
                                                     "(default: 1 - level)."),
    test: str = typer.Option("interval", help="What gives a comparison's p-value: interval (the level at which its "
                                              "interval reaches the null value) or permutation (sign flips of the "
                                              "seeds' paired differences, exact)."),
    full: bool = typer.Option(False, "--full", help="Print every table (IQM, paired differences, P(variant > "
                                                    "CPEP), ordering against the paper) instead of the main table "
                                                    "and the claims."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Tables and figures of a suite's results on one data identity, by the current code: mean and CI over seeds,
    IQM over seeds x held-out users, paired differences and P(variant > CPEP), the paper's numbers beside ours where
    the paper measured this data, the paper's claims with a verdict each, and every run without a result. The
    terminal shows the main table and the claims (--full: every table); the files hold everything."""
    from bench.report import build as report_module
    from bench.report import write
    formats = write.parse_formats(format_)
    store = runs_store(runs_dir)
    report_module.show(suites.load(suite), store, console, out=out, formats=formats, method=ci, level=level,
                       data=data, data_root=data_root, data_id=data_id, reuse_stale=reuse_stale, full=full,
                       alpha=alpha, test=test)
