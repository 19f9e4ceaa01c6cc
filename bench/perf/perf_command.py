"""`cpep-bench perf`: the command's options; bench.perf.command (and bench.perf.scale for --scale) does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bench import plugins
from bench.options import RunsDir, console, runs_store
from cpep import config


def perf(
    set_: list[str] = typer.Option([], "--set", help="Override a configuration key of the default model, the batch "
                                                     "or the data, e.g. --set align.batch_size=128."),
    method: list[str] = typer.Option([], "--method", metavar="NAME",
                                     help="Time this method's training stages (repeatable; a plug-in's too, with "
                                          "--plugins). Default: the methods of the paper suite that train."),
    plugins_: list[Path] = typer.Option([], "--plugins", metavar="DIR",
                                        help="A plug-in folder (methods/, datasets/, objectives/, metrics/), as a "
                                             "suite's `plugins` names them (repeatable)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda (default: auto)."),
    repeats: int = typer.Option(5, min=1, help="Timed repeats per row at most (fewer where a row would take over "
                                               "a few seconds); the median is reported."),
    quick: bool = typer.Option(False, "--quick", help="A small synthetic dataset, small paper-size stand-ins, one "
                                                     "repeat per row: checks that everything runs in about a "
                                                     "minute; the numbers mean little."),
    wide: bool = typer.Option(False, "--wide", help="Every column (batch, units timed, repeats, FLOPs, TFLOP/s); "
                                                    "the default table fits 80 columns."),
    project: Optional[str] = typer.Option(None, "--project", metavar="SUITE",
                                          help="Also project the hours of a suite's training stages (e.g. paper) "
                                               "on emg2pose's training split from the measured paper-size step "
                                               "rates, beside the paper's GPU-hours."),
    scale: bool = typer.Option(False, "--scale", help="Instead: the scale rehearsal. Generate emg2pose-shaped "
                                                     "data at growing sizes (--hours) and time each phase of a "
                                                     "run, fit its growth and project it to emg2pose's size."),
    hours: str = typer.Option("1,2,4,8", help="With --scale: hours of recordings at each size, comma-separated."),
    out: Optional[Path] = typer.Option(None, help="Directory for the CSV and JSON files (default: "
                                                  "<runs-dir>/perf, or <runs-dir>/perf/scale with --scale)."),
    runs_dir: Optional[Path] = RunsDir,
):
    """The device's GEMM roofline, every training stage of the chosen methods at the default and paper model
    sizes (windows/s, FLOP/s as a fraction of the roofline, peak memory), data paths beside a plain memory copy,
    zero-shot queries/s and the step rate beside a CPU-bound process, measured side by side in one process on the
    synthetic data (or --set data.name=emg2pose --set data.root=DIR). Prints one table and writes it as CSV and
    JSON, named for the device, where `cpep-bench run --plan` finds it."""
    overrides = dict(config.parse_assignment(s) for s in set_)
    if device is not None:
        overrides["train.device"] = device
    plugins.add_folders(plugins_)
    for name in method:
        plugins.path("method", name)  # an unknown name stops here
    store = runs_store(runs_dir)
    store.check_writable()
    if scale:
        from bench.perf.scale import rehearse
        rehearse(overrides, store, out or store.root / "perf" / "scale", hours, console)
        return
    from bench.perf.command import show
    show(overrides, store, out or store.root / "perf", repeats, quick, project, method, wide, console)
