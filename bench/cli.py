"""The `cpep-bench` command line."""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from bench import plugins, suites
from bench.check.data_command import data_check, data_synth
from bench.check.show import scan_progress
from bench.options import DataName, DataRoot, Device, RunsDir, Seeds, Sets, console, runs_store
from bench.perf.perf_command import perf
from bench.report.command import report
from bench.report.coverage_command import coverage
from bench.run import planner
from bench.run.store import Store
from cpep import config
from cpep.errors import DiskFull, UserError
from cpep.files import disk_full

app = typer.Typer(help="Reproducibility benchmark suite for CPEP (contrastive pose-EMG pre-training).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Create datasets in the emg2pose format, or check emg2pose and NinaPro DB2 "
                             "datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def precision(device: str, gpus: bool | None) -> str:
    """The precision a stage will compute at where it runs: bf16 on a GPU (here, or where the executor sends it),
    float32 on a CPU; `gpus` None: decided here, by train.device."""
    if device == "cpu":
        return "float32"
    if device.startswith("cuda") or gpus:
        return "bf16"
    if gpus is False:
        return "float32"
    from bench.run.provenance import precision as of_device
    from cpep.nn.train import pick_device
    return of_device(pick_device("auto"))


def selection(suite_name: str, data: str, data_root: Optional[Path], seeds: Optional[str],
              variants: Optional[str], sets: list[str], device: Optional[str],
              executor: plugins.Executor | None = None, store: Store | None = None) -> list[planner.Run]:
    """The runs asked for; with a `store`, stages whose code changed reuse the older outputs (--reuse-stale)."""
    return plan_selection(suites.load(suite_name), data, data_root, seeds, variants, sets, device, executor, store)


def plan_selection(suite: suites.Suite, data: str, data_root: Optional[Path], seeds: Optional[str],
                   variants: Optional[str], sets: list[str], device: Optional[str],
                   executor: plugins.Executor | None = None, store: Store | None = None) -> list[planner.Run]:
    overrides = dict(config.parse_assignment(s) for s in sets)
    overrides["data.name"] = data
    if data_root is not None:
        overrides["data.root"] = str(data_root.expanduser().resolve())
    if device is not None:
        overrides["train.device"] = device
    names = [v.strip() for v in variants.split(",") if v.strip()] if variants else None
    device_setting = plugins.resolve(suite.overrides, overrides)["train"]["device"]
    at = {}

    def precision_of(kind: str) -> str:
        if kind not in at:
            at[kind] = precision(device_setting, executor.gpus(kind) if executor else None)
        return at[kind]

    return planner.plan(suite, suites.parse_seeds(seeds) if seeds else None, names, overrides, precision_of,
                        planner.stale_reuse(store) if store else None)


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
    data: str = DataName,
    data_root: Optional[Path] = DataRoot,
    seeds: Optional[str] = Seeds,
    variants: Optional[str] = typer.Option(None, help="Comma-separated variant names (default: all)."),
    set_: list[str] = Sets,
    device: Optional[str] = Device,
    executor: str = typer.Option("local", help="Executor plug-in: local (here; --jobs), slurm (job arrays via "
                                               "submitit; --profile, --wait) or one from a plug-in folder."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j",
                                       help="local: compute this many independent stages at once, each in its own "
                                            "process on its share of the CPUs (default 1: one after another, here)."),
    profile: Optional[str] = typer.Option(None, help="slurm: cluster profile, a name in slurm/profiles or a TOML "
                                                     "path."),
    wait: Optional[bool] = typer.Option(None, "--wait/--no-wait",
                                        help="slurm: follow the jobs until they finish, with their progress and a "
                                             "line per run. Without it, submit, print the job ids and return."),
    wait_timeout: Optional[float] = typer.Option(None, "--wait-timeout", min=0,
                                                 help="slurm, with --wait: stop waiting after this many minutes (the "
                                                      "jobs go on; exit code 1). Default: no limit."),
    force: bool = typer.Option(False, "--force", help="Recompute finished runs and their stages."),
    fail_fast: bool = typer.Option(False, "--fail-fast",
                                   help="Stop at the first run that fails (local executor; on SLURM every submitted "
                                        "job runs)."),
    reuse_stale: bool = typer.Option(False, "--reuse-stale",
                                     help="Reuse stages made by older code when the current code has not made "
                                          "them yet; their runs are marked stale in the report."),
    plan: bool = typer.Option(False, "--plan",
                              help="Train nothing: print the quote. The stages the sweep needs, those the runs "
                                   "directory holds already and those to compute, with the training hours on the "
                                   "device (--device, default this machine's) from its latest `cpep-bench perf` "
                                   "file. Counts the data's windows (generating synthetic data on first use)."),
    perf_file: Optional[Path] = typer.Option(None, "--perf", metavar="FILE",
                                             help="With --plan: the perf JSON file to take the rates from (default: "
                                                  "the latest <runs-dir>/perf/perf-<device>-*.json)."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Train and evaluate every run of a suite (variants x seeds); finished runs are skipped. A stage whose code
    changed since it was made is recomputed (or, with --reuse-stale, reused and marked). Exits 1 when a run
    failed; the traceback is in the failed stage's error.log. --plan quotes the sweep instead."""
    suites.load(suite)  # its plug-in folders (executors among them) are known from here on
    if perf_file is not None and not (plan and perf_file.is_file()):
        raise UserError(f"--perf {perf_file}: no such file" if plan else "--perf goes with --plan")
    chosen = plugins.get("executor", executor).configured(
        {"jobs": jobs, "profile": profile, "wait": wait, "wait_timeout": wait_timeout})
    store = runs_store(runs_dir)
    store.check_writable()
    if plan:  # a quote for a GPU is planned at its precision (bf16) without one here
        from bench.perf import quote
        gpu = device is not None and device.startswith("cuda")
        runs = selection(suite, data, data_root, seeds, variants, set_, None if gpu else device,
                         quote.OnGpu() if gpu else chosen, store if reuse_stale else None)
        quote.show(runs, store, "cuda" if gpu else precision_device(device), perf_file, console)
        return
    runs = selection(suite, data, data_root, seeds, variants, set_, device, chosen, store if reuse_stale else None)
    with store.lock(shlex.join(["cpep-bench", *sys.argv[1:]])):  # one sweep at a time in a runs directory
        chosen.before(runs, store)
        preflight(runs, store)
        try:
            sweep(runs, store, chosen, force, fail_fast)
        except (OSError, DiskFull):  # writing failed: the table would not be written either
            raise
        except BaseException:
            rebuild_table(store)
            raise
        rebuild_table(store)


def precision_device(device: Optional[str]) -> str:
    """The device type a run computes on here: cpu or cuda."""
    from cpep.nn.train import pick_device
    return pick_device(device or "auto").type


def rebuild_table(store: Store) -> None:
    """The records written so far, finished or not, as one table."""
    from bench.run import records_table
    records_table.rebuild(store)


def sweep(runs: list[planner.Run], store: Store, executor: plugins.Executor, force: bool, fail_fast: bool) -> None:
    """The runs not done yet, by the executor; typer.Exit(1) when one failed."""
    from bench.run import sweep as sweeps
    if not sweeps.execute(runs, store, executor, console, force, fail_fast):
        raise typer.Exit(1)


app.command()(report)  # bench/report/command.py


@app.command()
def evaluate(
    encoder: str = typer.Option(..., "--encoder", help="The EMG encoder the linear probes read: a TorchScript file, "
                                                       "an entry point package.module:build (returning a torch "
                                                       "module, EMG (B, C, T) -> (B, D)), or an emg2pose checkpoint "
                                                       "(its TDS featurizer)."),
    pose_encoder: Optional[str] = typer.Option(None, "--pose-encoder",
                                               help="A pose encoder (TorchScript file or entry point, pose (B, J, T') "
                                                    "-> (B, D)) in the space of the EMG embedding: zero-shot "
                                                    "references. Without one, zero-shot is not applicable."),
    query_encoder: Optional[str] = typer.Option(None, "--query-encoder",
                                                help="With --pose-encoder: the EMG encoder whose output lives in the "
                                                     "pose encoder's space (zero-shot queries, e.g. an encoder and "
                                                     "its projection head); default: --encoder."),
    suite: str = typer.Option(..., "--suite", "-s", help="The suite whose protocol, seeds and data evaluate it "
                                                         "(name or TOML file)."),
    name: Optional[str] = typer.Option(None, help="The variant's name in the suite's records (default: the "
                                                  "encoder file's stem, or the entry point)."),
    label: Optional[str] = typer.Option(None, help="Its label in the report's tables (default: the name)."),
    data: str = DataName,
    data_root: Optional[Path] = DataRoot,
    seeds: Optional[str] = Seeds,
    set_: list[str] = Sets,
    device: Optional[str] = Device,
    force: bool = typer.Option(False, "--force", help="Evaluate again runs already done."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Evaluate an encoder trained elsewhere under a suite's protocol (linear probe, zero-shot, few-shot where the
    suite asks; its seeds, data and held-out users), training nothing. Each encoder is loaded and tried on a few
    windows first: one that cannot be loaded, gives (B, ...) other than (B, D), or gives NaN is refused with one
    line (exit code 2). Its records join the suite's, so `cpep-bench report --suite S` shows it beside the others;
    a changed encoder file is evaluated again, never read from an older evaluation."""
    from bench.run import outside
    chosen = outside.with_encoder(suites.load(suite), encoder, query_encoder, pose_encoder, name, label)
    variant = chosen.variants[-1]
    runs = plan_selection(chosen, data, data_root, seeds, variant.name, set_, device)
    store = runs_store(runs_dir)
    store.check_writable()
    with store.lock(shlex.join(["cpep-bench", *sys.argv[1:]])):
        preflight(runs, store)
        for line in outside.check(runs, store):
            console.print(line, markup=False, highlight=False)
        try:
            sweep(runs, store, plugins.get("executor", "local").configured({}), force, False)
        finally:
            rebuild_table(store)
    console.print(f"`cpep-bench report --suite {suite}` shows {variant.name} beside the suite's variants",
                  markup=False, highlight=False)


@app.command()
def status(
    suite: str = typer.Option(..., "--suite", "-s", help="Suite name or suite TOML file."),
    data_id: Optional[str] = typer.Option(None, help="Only the runs on this data identity (<dataset>-<key>, or "
                                                     "its start)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Keep the table on screen, refreshed, until every run "
                                                            "has ended (or Ctrl-C)."),
    interval: float = typer.Option(5.0, "--interval", min=0.1, help="With --watch: seconds between refreshes."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Each run of the latest sweep of a suite, queued ones too, and any other run with a record: queued, running,
    done, stale (its code changed since), failed (with its reason), interrupted, cancelled or blocked (SLURM says
    its job can never start); the stage it is at, with that stage's epoch, loss and elapsed time, and the time its
    remaining stages take at the rates so far. From the records, the stages' progress files and what the sweep's
    executor knows (its processes, or squeue)."""
    from bench.run.status import show_status
    show_status(runs_store(runs_dir), suites.load(suite).name, console, data_id, interval if watch else None)


@app.command()
def cancel(
    suite: str = typer.Option(..., "--suite", "-s", help="Suite name or suite TOML file."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Stop the suite's latest sweep on each data identity through its executor: SLURM's queued and running jobs
    are cancelled, a local sweep is interrupted as Ctrl-C would. Records are left as they are: finished runs stay
    finished, and the next `cpep-bench run` redoes the others (resuming from their checkpoints)."""
    from bench.run import sweep as sweeps
    store, name = runs_store(runs_dir), suites.load(suite).name
    stopped = 0
    for data_dir in sweeps.data_dirs(store, name):
        found = sweeps.read(store, name, data_dir)
        if found is None:
            continue
        n = plugins.get("executor", found["executor"]).cancel(store, name, data_dir, found, console)
        if n:
            sweeps.mark_cancelled(store, found)
        stopped += n
    if not stopped:
        console.print(f"suite {name}: nothing queued or running to cancel")


@app.command("config")
def show_config(
    section: Optional[str] = typer.Argument(None, help="Only this section (e.g. align, data, zero_shot)."),
    suite: Optional[str] = typer.Option(None, "--suite", "-s", help="Also load this suite's plug-in folders."),
):
    """Every configuration key: its default, its range or choices, and why it has this default. Each section
    belongs to the library or to one plug-in (`--set section.key=value` changes it)."""
    if suite:
        suites.load(suite)
    found = plugins.sections()
    if section is not None and section not in found:
        raise UserError(f"unknown configuration section {section!r} ({', '.join(sorted(found))})")
    table = Table("key", "default", "range", "why", title="configuration (cpep-bench run --set KEY=VALUE)")
    for name in sorted(found) if section is None else [section]:
        cls = found[name]
        for f in cls.params():
            m = f.metadata
            rng = m["bound"] or (" | ".join(map(str, m["choices"])) if m["choices"] else "")
            table.add_row(f"{name}.{f.name}", repr(cls.defaults()[f.name]), rng, m["why"])
    console.print(table)


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


data_app.command("synth")(data_synth)  # bench/check/data_command.py
data_app.command("check")(data_check)
app.command()(perf)  # bench/perf/perf_command.py
app.command()(coverage)  # bench/report/coverage_command.py


@app.command()
def spread(
    suite: str = typer.Option(..., "--suite", "-s", help="Suite name (see `cpep-bench suites`) or a suite TOML file."),
    seeds: Optional[str] = typer.Option(None, help="Seeds, e.g. 0 or 0-2 (default: the suite's first seed). With "
                                                   "several, the sd over seeds is shown beside the spread."),
    envs: Optional[str] = typer.Option(None, "--envs",
                                       help="Comma-separated training environments: cpu-<N>t (N torch threads, "
                                            "the default CPU kernels), cpu-<N>t-avx2 (torch, MKL and oneDNN "
                                            "kernels limited to AVX2), cuda. One named twice runs twice. "
                                            "Default: cpu-1t,cpu-2t,cpu-1t-avx2, and cuda where CUDA is present."),
    variants: Optional[str] = typer.Option(None, help="Comma-separated variant names (default: all)."),
    set_: list[str] = Sets,
    data: str = DataName,
    data_root: Optional[Path] = DataRoot,
    force: bool = typer.Option(False, "--force", help="Retrain runs an earlier spread left in --out."),
    out: Optional[Path] = typer.Option(None, help="Directory for the environments' runs directories and the "
                                                  "CSV and JSON files (default: <runs-dir>/spread/<suite>)."),
    runs_dir: Optional[Path] = RunsDir,
):
    """Train a suite's runs under several training environments and show how far their metrics disagree: CPU
    results depend on torch's thread count and on the CPU kernels (AVX-512/AMX or AVX2), which stage keys leave
    out (records name them per stage); a GPU trains in bf16. Each environment is a `cpep-bench run` subprocess with
    its own runs directory, <out>/<environment>/, sharing the synthetic data of --runs-dir. Prints, per (variant,
    metric), the value in each environment and max - min across them (with several seeds, the sd over seeds
    beside it), and writes spread-<suite>.csv and .json to --out, with the command, date, machine (CPU model and
    kernel flags, torch version), git commit and each environment's settings and torch kernel level. Runs that an
    earlier spread finished in --out are reused (--force retrains them). Exits 1 when an environment failed."""
    from bench.check import spread as spread_module
    environments = spread_module.parse_environments(
        [e.strip() for e in envs.split(",") if e.strip()] if envs else spread_module.default_environments())
    seeds = seeds or str(suites.load(suite).seeds[0])
    store = runs_store(runs_dir)
    runs = selection(suite, data, data_root, seeds, variants, set_, "cpu")
    run_args = ["run", "--suite", suite, "--seeds", seeds, "--data", data,
                *(["--data-root", str(data_root.expanduser().resolve())] if data_root else []),
                *(["--variants", variants] if variants else []), *(a for s in set_ for a in ("--set", s)),
                *(["--force"] if force else [])]
    if not spread_module.measure(runs, run_args, environments, store, out or store.root / "spread" / runs[0].suite,
                                 shlex.join(["cpep-bench", *sys.argv[1:]]), console):
        raise typer.Exit(1)


def main() -> None:
    # `cpep-bench cancel` stops a sweep with SIGINT, which a shell ignores in the commands it starts in the
    # background (`cpep-bench run ... &`): take it back, so that cancel stops a sweep however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
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
