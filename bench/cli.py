"""The `cpep-bench` command line."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bench import plugins, suites
from bench.check.show import scan_progress
from bench.run import planner
from bench.run.store import Store
from cpep import config
from cpep.errors import DiskFull, UserError
from cpep.files import disk_full
from cpep.synth.config import SynthConfig

app = typer.Typer(help="Reproducibility benchmark suite for CPEP (contrastive pose-EMG pre-training).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Create datasets in the emg2pose format, or check emg2pose and NinaPro DB2 "
                             "datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
# Piped output (logs, CI) is not squeezed into 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)

DEFAULT_RUNS = "cpep-runs"
RunsDir = typer.Option(None, "--runs-dir",
                          help=f"Where runs, stage outputs and generated data go (default: $CPEP_BENCH_RUNS "
                               f"or ./{DEFAULT_RUNS}).")


def runs_store(runs_dir: Optional[Path]) -> Store:
    return Store(runs_dir or Path(os.environ.get("CPEP_BENCH_RUNS", DEFAULT_RUNS)))


def precision(device: str, gpus: bool) -> str:
    """The precision the runs will train at where they run: bf16 on a GPU (here, or in the SLURM profile's jobs)."""
    if device == "cpu":
        return "float32"
    if device.startswith("cuda") or gpus:
        return "bf16"
    from bench.run.provenance import precision as of_device
    from cpep.nn.train import pick_device
    return of_device(pick_device("auto"))


def selection(suite_name: str, data: str, data_root: Optional[Path], seeds: Optional[str],
              variants: Optional[str], sets: list[str], device: Optional[str], gpus: bool = False,
              store: Store | None = None) -> list[planner.Run]:
    """The runs asked for; with a `store`, stages whose code changed reuse the older outputs (--reuse-stale)."""
    suite = suites.load(suite_name)
    overrides = dict(config.parse_assignment(s) for s in sets)
    overrides["data.name"] = data
    if data_root is not None:
        overrides["data.root"] = str(data_root.expanduser().resolve())
    if device is not None:
        overrides["train.device"] = device
    names = [v.strip() for v in variants.split(",") if v.strip()] if variants else None
    device_setting = plugins.resolve(suite.overrides, overrides)["train"]["device"]
    return planner.plan(suite, suites.parse_seeds(seeds) if seeds else None, names, overrides,
                        precision(device_setting, gpus), planner.stale_reuse(store) if store else None)


def preflight(runs: list[planner.Run], store: Store) -> None:
    """Check every dataset the runs use before anything is written for them (generating synthetic data once)."""
    checked = set()
    for run in runs:
        ident = config.digest(run.config["data"])
        if ident in checked:
            continue
        with console.status(f"checking {run.dataset} data") as status:
            data = plugins.get("dataset", run.dataset).open(run.config, store)
            data.check_files(scan_progress(status))
        skipped = getattr(data, "skipped", [])
        if skipped:
            console.print(f"{len(skipped)} file(s) under {run.config['data']['root']} skipped, e.g. {skipped[0][0]}: "
                          f"{skipped[0][1]} (`cpep-bench data check` lists them all)", markup=False, highlight=False)
        checked.add(ident)


@app.command()
def run(
    suite: str = typer.Option(..., "--suite", "-s", help="Suite name (see `cpep-bench suites`) or a suite TOML file."),
    data: str = typer.Option("synthetic", help="Dataset plug-in: 'synthetic' (built in, generated on first use), "
                                               "'emg2pose' or 'ninapro_db2'."),
    data_root: Optional[Path] = typer.Option(None, help="Directory of the dataset: emg2pose's metadata.csv + HDF5 "
                                                        "files, or NinaPro DB2's S<n>_E<e>_A1.mat files."),
    seeds: Optional[str] = typer.Option(None, help="Seeds, e.g. 0-4 or 0,3,7 (default: the suite's)."),
    variants: Optional[str] = typer.Option(None, help="Comma-separated variant names (default: all)."),
    set_: list[str] = typer.Option([], "--set", help="Override a configuration key, e.g. --set mae.epochs=5 or "
                                                     "--set data.vocab=FILE.toml (the gesture vocabulary)."),
    device: Optional[str] = typer.Option(None, help="auto (CUDA when present), cpu or cuda (default: auto)."),
    executor: str = typer.Option("local", help="local (sequential, here) or slurm (job arrays via submitit)."),
    profile: Optional[str] = typer.Option(None, help="SLURM cluster profile: a name in slurm/profiles or a TOML path."),
    wait: bool = typer.Option(False, "--wait/--no-wait",
                              help="With --executor slurm: follow the jobs until they finish, one line per run. "
                                   "Without it, submit, print the job ids and return."),
    wait_timeout: Optional[float] = typer.Option(None, "--wait-timeout", min=0,
                                                 help="With --wait: stop waiting after this many minutes (the jobs "
                                                      "go on; exit code 1). Default: no limit."),
    force: bool = typer.Option(False, "--force", help="Recompute finished runs and their stages."),
    fail_fast: bool = typer.Option(False, "--fail-fast",
                                   help="Stop at the first run that fails (local executor; on SLURM every submitted "
                                        "job runs)."),
    reuse_stale: bool = typer.Option(False, "--reuse-stale",
                                     help="Reuse stages made by older code when the current code has not made "
                                          "them yet; their runs are marked stale in the report."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Train and evaluate every run of a suite (variants x seeds); finished runs are skipped. A stage whose code
    changed since it was made is recomputed (or, with --reuse-stale, reused and marked). Exits 1 when a run
    failed; the traceback is in the failed stage's error.log."""
    if executor not in ("local", "slurm"):
        raise UserError(f"unknown executor {executor!r} (choose local or slurm)")
    if executor == "slurm":
        from bench.run.slurm import submit
        from bench.run.slurm.profile import check_available, load_profile
        slurm_profile = load_profile(profile)
        check_available()
    store = runs_store(runs_dir)
    store.check_writable()
    gpus = executor == "slurm" and slurm_profile.params.get("slurm_gpus_per_task", 0) > 0
    runs = selection(suite, data, data_root, seeds, variants, set_, device, gpus, store if reuse_stale else None)
    with store.lock(shlex.join(["cpep-bench", *sys.argv[1:]])):  # one sweep at a time in a runs directory
        if executor == "slurm":
            submit.check_idle(store, runs)
        preflight(runs, store)
        try:
            sweep(runs, store, executor, slurm_profile if executor == "slurm" else None, force, fail_fast, wait,
                  wait_timeout)
        except (OSError, DiskFull):  # writing failed: the table would not be written either
            raise
        except BaseException:
            rebuild_table(store)
            raise
        rebuild_table(store)


def rebuild_table(store: Store) -> None:
    """The records written so far, finished or not, as one table."""
    from bench.run import records_table
    records_table.rebuild(store)


def sweep(runs: list[planner.Run], store: Store, executor: str, slurm_profile, force: bool, fail_fast: bool,
          wait: bool, wait_timeout: Optional[float]) -> None:
    """The runs not done yet, by the executor; typer.Exit(1) when one failed."""
    todo = [r for r in runs if force or not store.run_done(r)]
    stale = sum(r.stale for r in runs)
    console.print(f"suite {runs[0].suite}: {len(runs)} runs, {len(runs) - len(todo)} already done, "
                  f"{len(todo)} to do{f', {stale} reusing stages of older code' if stale else ''}; "
                  f"results in {store.root}")
    if not todo:
        return
    from bench.run import runner
    runner.prepare(todo, store, force)
    if executor == "slurm":
        from bench.run.slurm import submit
        from bench.run.slurm.watch import WaitStopped
        try:
            records = submit.execute(todo, store, slurm_profile, console, wait=wait, timeout_min=wait_timeout)
        except WaitStopped as stopped:
            raise typer.Exit(stopped.args[0]) from None
        if records is None:  # submitted without --wait
            return
    else:
        from bench.executors import local
        records = local.execute(todo, store, console, fail_fast)
    failed = [r for r in records if r["status"] != "done"]
    if failed or len(records) < len(todo):
        skipped = f", {len(todo) - len(records)} without a record" if len(records) < len(todo) else ""
        console.print(f"[red]{len(failed)} of {len(records)} runs failed[/red]{skipped}; tracebacks in each failed "
                      f"stage's error.log (see `cpep-bench status --suite {runs[0].suite}`)")
        raise typer.Exit(1)


@app.command()
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
    format_: str = typer.Option("md,tex,csv", "--format",
                                help="Table files to write: any of md, tex, csv (figures are always written, "
                                     "as PNG and SVG)."),
    ci: str = typer.Option("t", help="Confidence interval of the means: t (Student t over seeds) or bootstrap "
                                     "(percentile, stratified: seeds, then each seed's held-out users, where the "
                                     "records have per-user scores; seeds only otherwise)."),
    level: float = typer.Option(0.95, help="Confidence level of the intervals."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Tables and figures of a suite's results on one data identity, by the current code: mean and CI over seeds,
    IQM over seeds x held-out users, paired differences and P(variant > CPEP), the paper's numbers beside ours where
    the paper measured this data, the paper's claims with a verdict each, and every run without a result."""
    from bench.report import build as report_module
    formats = report_module.parse_formats(format_)
    store = runs_store(runs_dir)
    report_module.show(suites.load(suite), store, console, out=out, formats=formats, method=ci, level=level,
                       data=data, data_root=data_root, data_id=data_id, reuse_stale=reuse_stale)


@app.command()
def status(
    suite: str = typer.Option(..., "--suite", "-s", help="Suite name or suite TOML file."),
    data_id: Optional[str] = typer.Option(None, help="Only the runs on this data identity (<dataset>-<key>, or "
                                                     "its start)."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Each run of a suite: queued, running, done, stale (its code changed since), failed (with its reason),
    interrupted or cancelled, from the records and, for runs submitted with --executor slurm, from squeue."""
    from bench.run.status import show_status
    show_status(runs_store(runs_dir), suites.load(suite).name, console, data_id)


@app.command()
def cancel(
    suite: str = typer.Option(..., "--suite", "-s", help="Suite name or suite TOML file."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Cancel the suite's queued and running SLURM jobs. Records are left as they are: finished runs stay
    finished, and the next `cpep-bench run` redoes the others (resuming from their checkpoints)."""
    from bench.run.slurm import watch
    watch.cancel(runs_store(runs_dir), suites.load(suite).name, console)


@app.command("suites")
def list_suites():
    """The built-in suites, their variants and the work each plans."""
    table = Table("suite", "variants", "seeds", "runs", "training stages", "epochs",
                  title="built-in suites (work: distinct training stages, and their epochs summed)")
    descriptions = []
    for name in suites.available():
        suite = suites.load(name)
        runs = planner.plan(suite)
        work = [s for s in planner.unique_stages(runs) if s.kind != "eval"]
        table.add_row(name, str(len(suite.variants)), ",".join(map(str, suite.seeds)), str(len(runs)),
                      str(len(work)), str(sum(planner.epochs(s) for s in work)))
        descriptions.append(f"{name}: {suite.description} ({', '.join(suite.names)})")
    console.print(table)
    console.print("\n".join(descriptions), highlight=False)


SYNTH = SynthConfig()  # the defaults of `data synth`


@data_app.command("synth")
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


@data_app.command("check")
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


@app.command()
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
    JSON, named for the device, where `cpep-bench plan` finds it."""
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


@app.command()
def plan(
    suite: str = typer.Option(..., "--suite", "-s", help="Suite name (see `cpep-bench suites`) or a suite TOML file."),
    data: str = typer.Option("synthetic", help="Dataset plug-in: 'synthetic', 'emg2pose' or 'ninapro_db2'."),
    data_root: Optional[Path] = typer.Option(None, help="Directory of the dataset (as `run` takes it)."),
    seeds: Optional[str] = typer.Option(None, help="Seeds, e.g. 0-4 or 0,3,7 (default: the suite's)."),
    variants: Optional[str] = typer.Option(None, help="Comma-separated variant names (default: all)."),
    set_: list[str] = typer.Option([], "--set", help="Override a configuration key, as `run` takes it."),
    device: str = typer.Option("auto", help="The device the sweep will run on: auto (this machine's), cpu or "
                                            "cuda; its latest perf file gives the rates."),
    perf_file: Optional[Path] = typer.Option(None, "--perf", metavar="FILE",
                                             help="A perf JSON file to take the rates from (default: the latest "
                                                  "<runs-dir>/perf/perf-<device>-*.json)."),
    runs_dir: Optional[Path] = RunsDir,
):
    """A quote before a sweep: the stages a suite needs, those the runs directory holds already (reused) and those
    to compute, and the estimated hours of the training stages by kind and in total on the device, from the
    latest `cpep-bench perf` file for it. Counts the data's windows (generating synthetic data on first use, as
    `run` would); trains nothing."""
    from bench.perf.quote import show
    from cpep.nn.train import pick_device
    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device takes auto, cpu or cuda, not {device!r}")
    if perf_file is not None and not perf_file.is_file():
        raise UserError(f"--perf {perf_file}: no such file")
    device_type = pick_device("auto").type if device == "auto" else device
    runs = selection(suite, data, data_root, seeds, variants, set_, None, gpus=device_type == "cuda")
    show(runs, runs_store(runs_dir), device_type, perf_file, console)


def main() -> None:
    try:
        app()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a file that could not be written (or read) outside a stage: one line too
        print(f"error: {disk_full(e, e.filename) or os_error_line(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished stages and runs are kept; run again to resume", file=sys.stderr)
        sys.exit(130)


def os_error_line(e: OSError) -> str:
    text = str(e.strerror or e).strip().splitlines()
    reason = text[0] if text else type(e).__name__
    return f"{e.filename}: {reason}" if e.filename else reason


if __name__ == "__main__":
    main()
