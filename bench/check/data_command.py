"""`cpep-bench data synth` and `cpep-bench data check`: the commands' options; cpep.synth.simulator and
bench.check.show do the work."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bench import plugins
from bench.options import RunsDir, console, runs_store
from cpep import config
from cpep.errors import UserError
from cpep.synth.config import SynthConfig

SYNTH = SynthConfig()  # the defaults of `data synth`


def data_synth(
    out: Path = typer.Option(..., help="New directory to write the dataset into."),
    seed: int = typer.Option(SYNTH.seed, help="Random seed: the same seed writes the same data."),
    users: int = typer.Option(SYNTH.users, help="Number of users."),
    test_users: int = typer.Option(SYNTH.test_users, help="Held-out test users (the last ones)."),
    val_users: int = typer.Option(SYNTH.val_users, help="Held-out validation users (before the test users)."),
    stage_seconds: float = typer.Option(SYNTH.stage_seconds, help="Seconds per gesture stage (free-form lasts 3x)."),
    difficulty: float = typer.Option(SYNTH.difficulty,
                                     help="0 = clean, identical users; 1 = noisy, very different users."),
    one_handed: float = typer.Option(SYNTH.one_handed, help="Chance that a user performs a stage with one hand (else "
                                                            "both); the other hand's recording is at rest."),
    stages: str = typer.Option(SYNTH.stages, help="Stage set: v1 (one gesture per stage, vocabulary synthetic-v1) or "
                                                  "v2 (stages that share postures, synthetic-v2)."),
    sessions: int = typer.Option(SYNTH.sessions, help="Sessions per user, each performing every stage once."),
):
    """Write a synthetic dataset in the emg2pose format (HDF5 files + metadata.csv)."""
    from rich.progress import Progress

    from cpep.synth.simulator import generate
    cfg = SynthConfig(seed, users, test_users, val_users, stage_seconds, difficulty, one_handed=one_handed,
                      stages=stages, sessions=sessions)
    cfg.check()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty directory")
    if out.exists():
        out.rmdir()
    with Progress(console=console) as progress:
        task = progress.add_task("writing recordings", total=None)
        generate(cfg, out, lambda done, total: progress.update(task, completed=done, total=total))
    console.print(f"wrote {out}")


def data_check(
    root: Path = typer.Argument(..., help="Dataset directory (emg2pose: metadata.csv + HDF5 files, which may sit "
                                          "in subfolders; ninapro_db2: S<n>_E<e>_A1.mat files in any folders)."),
    data: str = typer.Option("emg2pose", help="Dataset format: emg2pose or ninapro_db2."),
    set_: list[str] = typer.Option([], "--set", help="Override a data key, e.g. --set data.vocab=FILE.toml (the "
                                                     "gesture vocabulary; default: emg2pose-v1, the one a synthetic "
                                                     "dataset names in SYNTHETIC.txt, or ninapro-db2-v1), --set "
                                                     "data.protocol=embridge, --set data.allow_missing=true (emg2pose "
                                                     "rows whose file is absent are left out, and counted) or --set "
                                                     "data.ninapro.split=cross_subject."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Check that a directory is a usable dataset and describe it: for emg2pose its files, users, stages,
    sessions, hours of EMG and IK failures; for NinaPro DB2 its files, subjects, movements and hours; then the
    windows of each selection (per class for the probes) and every problem, one line each (exit code 2 when the
    dataset cannot be used). Every row of every recording is scanned; the verdicts are kept in the results
    directory's cache, where runs find them."""
    if data not in ("emg2pose", "ninapro_db2"):
        raise UserError(f"data check reads emg2pose or ninapro_db2 datasets, not {data!r}")
    overrides = dict(config.parse_assignment(s) for s in set_)
    store = runs_store(runs_dir)
    store.check_writable()  # the verdicts are kept in its cache
    if data == "ninapro_db2":
        from bench.check.show import check_ninapro
        cfg = plugins.resolve({**overrides, "data.name": data, "data.root": str(root)})
        check_ninapro(cfg, root, store, console)
        return
    from bench.check.show import check_emg2pose
    from cpep.synth.simulator import vocabulary
    default = vocabulary(root) if (root / "SYNTHETIC.txt").is_file() else "emg2pose-v1"
    cfg = plugins.resolve({"data.vocab": default}, overrides, {"data.name": "emg2pose", "data.root": str(root)})
    check_emg2pose(cfg, root, store, console)
