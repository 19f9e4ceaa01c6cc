"""What the commands share: the console they print to, the runs directory, and the options of `run` and
`evaluate`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from bench.run.store import Store

# Piped output (logs, CI) is not squeezed into 80 columns, unless COLUMNS asks for a width.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 140)

DEFAULT_RUNS = "cpep-runs"
RunsDir = typer.Option(None, "--runs-dir",
                       help=f"Where runs, stage outputs and generated data go (default: $CPEP_BENCH_RUNS "
                            f"or ./{DEFAULT_RUNS}).")

DataName = typer.Option("synthetic", "--data", help="Dataset plug-in: 'synthetic' (built in, generated on first use), "
                                                     "'emg2pose' or 'ninapro_db2'.")
DataRoot = typer.Option(None, "--data-root", help="Directory of the dataset: emg2pose's metadata.csv + HDF5 files, "
                                                  "or NinaPro DB2's S<n>_E<e>_A1.mat files.")
Seeds = typer.Option(None, "--seeds", help="Seeds, e.g. 0-4 or 0,3,7 (default: the suite's).")
Sets = typer.Option([], "--set", help="Override a configuration key, e.g. --set mae.epochs=5 or --set "
                                      "data.vocab=FILE.toml (the gesture vocabulary).")
Device = typer.Option(None, "--device", help="auto (CUDA when present), cpu or cuda (default: auto).")


def runs_store(runs_dir: Optional[Path]) -> Store:
    return Store(runs_dir or Path(os.environ.get("CPEP_BENCH_RUNS", DEFAULT_RUNS)))
