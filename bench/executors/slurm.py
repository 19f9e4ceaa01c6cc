"""Runs as SLURM job arrays through submitit (bench.run.slurm): a profile says what each job asks for, checked
against what the cluster offers before anything is submitted; `--wait` follows the jobs until they end."""

from __future__ import annotations

from rich.console import Console

from bench import plugins
from bench.run.planner import EVAL
from bench.run.store import Store
from cpep.errors import UserError


def stage_kinds() -> set[str]:
    """Every stage kind the methods declare (at the default configuration), and evaluations."""
    cfg = plugins.resolve()
    return {EVAL} | {step.name for name in plugins.names("method") for step in plugins.get("method", name).steps(cfg)}


class Executor(plugins.Executor):
    takes = ("profile", "wait", "wait_timeout")

    def check(self) -> None:
        from bench.run.slurm import cluster
        from bench.run.slurm.profile import check_available, load_profile
        self.profile = load_profile(self.options.get("profile"))
        if self.options.get("wait_timeout") is not None and not self.options.get("wait"):
            raise UserError("--wait-timeout is a limit on --wait: give both")
        unknown = sorted(set(self.profile.kinds) - stage_kinds())
        if unknown:
            raise UserError(f"SLURM profile {self.profile.name}: [kinds.{unknown[0]}] is no stage kind (kinds: "
                            f"{', '.join(sorted(stage_kinds()))})")
        check_available()
        cluster.check(self.profile, sorted(self.profile.kinds))

    def gpus(self, kind: str) -> bool:
        return self.profile.gpus(kind)

    def parallel(self) -> None:
        return None

    def before(self, runs: list, store: Store) -> None:
        from bench.run.slurm import submit
        submit.check_idle(store, runs)

    def execute(self, runs: list, store: Store, console: Console, fail_fast: bool) -> list[dict] | None:
        from bench.run.slurm import submit
        from bench.run.slurm.watch import WaitStopped
        try:
            return submit.execute(runs, store, self.profile, console, wait=bool(self.options.get("wait")),
                                  timeout_min=self.options.get("wait_timeout"))
        except WaitStopped as stopped:
            import typer
            raise typer.Exit(stopped.args[0]) from None

    def known(self, store: Store, suite: str, data_dir: str, sweep: dict) -> dict[str, plugins.Seen]:
        from bench.run.slurm import watch
        return watch.known(store, suite, data_dir, sweep)

    def cancel(self, store: Store, suite: str, data_dir: str, sweep: dict, console: Console) -> int:
        from bench.run.slurm import watch
        return watch.cancel(store, suite, data_dir, console)
