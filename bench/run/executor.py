"""The interface an executor plug-in implements (bench.plugins.Executor): where and how a sweep's stages are
computed, what it knows of each run beyond the records, and how its work is stopped. bench/executors/local.py and
bench/executors/slurm.py implement it; docs/executors.md says how to write one."""

from __future__ import annotations

import copy
import os
import signal
import socket
from dataclasses import dataclass

from cpep import config
from cpep.errors import UserError

# The `run` options an executor may take: parameter name -> option.
OPTIONS = {"jobs": "jobs", "profile": "profile", "wait": "wait", "wait_timeout": "wait-timeout"}


@dataclass(frozen=True)
class Seen:
    """What an executor knows of one run beyond its record."""
    state: str      # queued, running, ended (its workers are gone), cancelled, or never (it can never start)
    job: str = ""   # its current job in the executor's words, e.g. "123_4 RUNNING"
    why: str = ""   # for ended, cancelled and never: the reason


class Executor:
    """Computes a sweep's runs: the stage graph of bench.run.planner, each stage by bench.run.runner, here or
    elsewhere. An executor changes no result: it has no configuration section, and no stage key depends on it.

    `takes` names the options of OPTIONS it accepts; `configured` refuses the others and calls `check`, so that
    everything it needs is checked before anything is written."""
    name = ""
    config: tuple[type[config.Section], ...] = ()
    takes: tuple[str, ...] = ()
    options: dict | None = None  # the options given, set by configured

    def configured(self, options: dict) -> Executor:
        """A copy of this executor with the options given (those not None), checked."""
        given = {k: v for k, v in options.items() if v is not None}
        wrong = [k for k in OPTIONS if k in given and k not in self.takes]
        if wrong:
            takes = ", ".join(f"--{OPTIONS[k]}" for k in self.takes) or "no options"
            raise UserError(f"--{OPTIONS[wrong[0]]} is not an option of the {self.name} executor (it takes {takes})")
        out = copy.copy(self)
        out.options = given
        out.check()
        return out

    def check(self) -> None:
        """Raise UserError for what it needs and lacks: a tool on the PATH, a valid profile, resources."""

    def gpus(self, kind: str) -> bool | None:
        """Whether a stage of this kind computes on a GPU (its precision follows); None: where `run` runs decides,
        by train.device."""
        return None

    def parallel(self) -> int | None:
        """How many stages it computes at once, for estimates; None: as many as can start."""
        return 1

    def before(self, runs: list, store) -> None:
        """Under the runs directory's lock, before anything is written: refuse what would clash with earlier work
        (the suite's jobs still queued elsewhere)."""

    def execute(self, runs: list, store, console, fail_fast: bool) -> list[dict] | None:
        """Compute the runs and return their records; None when they were handed to a scheduler that goes on
        without this process."""
        raise NotImplementedError

    def known(self, store, suite: str, data_dir: str, sweep: dict) -> dict[str, Seen]:
        """What it knows of the runs to do of a sweep that `run` wrote down (bench.run.sweep), by run ident; raise
        UserError when it cannot be asked (status then shows the records alone, with that warning).

        As here, for an executor that computes inside the `run` process: its runs are queued (or running, as their
        records say) while that process works, and ended (or cancelled) once it is gone."""
        if sweep_process_alive(store, sweep):
            seen = Seen("queued")
        elif sweep.get("cancelled"):
            seen = Seen("cancelled", why="by cpep-bench cancel; the next `cpep-bench run` redoes it")
        else:
            seen = Seen("ended", why=f"its sweep's process {sweep['pid']} on {sweep['host']} is gone")
        return {r["run"]: seen for r in sweep["runs"] if r["todo"]}

    def cancel(self, store, suite: str, data_dir: str, sweep: dict, console) -> int:
        """Stop that sweep's queued and running work; how many jobs or processes it stopped. As here, for an
        executor that computes inside the `run` process: interrupt that process, as Ctrl-C would."""
        if not sweep_process_alive(store, sweep):
            return 0
        os.kill(sweep["pid"], signal.SIGINT)
        console.print(f"suite {suite}: interrupted its sweep on {data_dir} (process {sweep['pid']}); finished stages "
                      f"and runs are kept: run the suite again to resume")
        return 1


def sweep_process_alive(store, sweep: dict) -> bool:
    """Whether the `run` process that wrote the sweep file still works: it holds the runs directory's lock and
    lives. UserError when it runs on another host, where this cannot be told."""
    holder = store.lock_holder() or {}
    if holder.get("pid") != sweep["pid"] or holder.get("host") != sweep["host"]:
        return False
    if sweep["host"] != socket.gethostname():
        raise UserError(f"its sweep runs on host {sweep['host']}: ask there")
    try:
        os.kill(sweep["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
