"""Stages side by side on one machine: each in its own process, on its own share of the CPUs, with its own torch
threads (one per CPU of its share unless train.threads says), seed and checkpoint. The local executor's --jobs and
a SLURM job packing several stages onto one GPU both run stages so.

A stage computes exactly as it would alone: the same code (bench.run.runner.ensure_stage) on the same inputs, so
its outputs are bit for bit those of its solo run where the thread count is the same (train.threads set, or the
same share of CPUs). The k worker processes are started fresh (spawn): nothing of this process, torch's thread
pools included, is inherited. Each computes one stage after another, and dies with this process.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from multiprocessing.connection import wait
from pathlib import Path

from bench.run import runner
from bench.run.planner import Stage, epochs
from bench.run.store import Store
from cpep.errors import DiskFull

PR_SET_PDEATHSIG = 1


def cpu_shares(k: int) -> list[list[int]]:
    """The CPUs this process may run on, cut into k shares (sizes differ by one at most); with fewer CPUs than k,
    shares of one CPU each, reused in turn."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < k:
        return [[cpus[i % len(cpus)]] for i in range(k)]
    size, extra = divmod(len(cpus), k)
    shares, start = [], 0
    for i in range(k):
        end = start + size + (i < extra)
        shares.append(cpus[start:end])
        start = end
    return shares


def epoch_lines(stage: Stage):
    """An on_epoch that prints a line per epoch (a SLURM job's log)."""
    total = epochs(stage)
    return lambda epoch, log: print(f"{stage.kind} epoch {epoch}/{total} loss {log.get('loss', '-')}", flush=True)


def _serve(root: str, cpus: list[int], say_epochs: bool, conn) -> None:
    """A worker process: compute each stage it is sent, and say how it went, until it is sent None."""
    os.sched_setaffinity(0, cpus)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # no worker outlives a killed parent
    except (OSError, AttributeError):
        pass
    store = Store(Path(root))
    while (stage := conn.recv()) is not None:
        try:
            runner.ensure_stage(stage, store, epoch_lines(stage) if say_epochs else None)
            conn.send(("done", None))
        except runner.StageFailed as e:
            conn.send(("failed", e.reason))
        except DiskFull as e:
            conn.send(("disk full", str(e)))
        except Exception as e:  # outside the stage's own work (ensure_stage records those): fail it all the same
            conn.send(("failed", f"{stage.kind}: {runner.one_line(e)}"))


class SideBySide:
    """Up to k stages computing at once, each in one of k worker processes, each on its share of the CPUs. A
    worker computes one stage after another (started once: importing torch takes seconds); one that dies is
    replaced when its share is next used."""

    def __init__(self, k: int, store: Store, say_epochs: bool = False):
        self.store, self.shares, self.say_epochs = store, cpu_shares(k), say_epochs
        self.workers: dict[int, tuple[multiprocessing.Process, object]] = {}  # share -> (process, pipe)
        self.busy: dict[int, Stage] = {}  # share -> the stage it computes

    @property
    def free(self) -> int:
        return len(self.shares) - len(self.busy)

    @property
    def running(self) -> list[Stage]:
        return list(self.busy.values())

    def start(self, stage: Stage) -> None:
        share = next(i for i in range(len(self.shares)) if i not in self.busy)
        if share not in self.workers or not self.workers[share][0].is_alive():
            if share in self.workers:
                self.workers[share][1].close()
            context = multiprocessing.get_context("spawn")
            here, there = context.Pipe()
            process = context.Process(target=_serve, args=(str(self.store.root), self.shares[share],
                                                           self.say_epochs, there),
                                      name=f"cpep-bench worker {share}", daemon=True)
            process.start()
            there.close()
            self.workers[share] = (process, here)
        self.workers[share][1].send(stage)
        self.busy[share] = stage

    def wait(self, timeout: float) -> list[tuple[Stage, str | None]]:
        """The stages that ended within `timeout` seconds, each with its failure's reason (None: done). A worker
        that died without a word (killed, out of memory) fails its stage with that reason; a full disk stops
        everything (DiskFull)."""
        watched = [w for share in self.busy for w in (self.workers[share][1], self.workers[share][0].sentinel)]
        wait(watched, timeout)
        ended = []
        for share, stage in list(self.busy.items()):
            process, pipe = self.workers[share]
            try:
                outcome = pipe.recv() if pipe.poll() else None
                gone = outcome is None and not process.is_alive()
            except (EOFError, OSError):  # its end of the pipe closed: the worker is gone
                outcome, gone = None, True
            if outcome is None:
                if not gone:
                    continue
                process.join(timeout=60)
                reason = (f"{stage.kind}: its worker process ended without a result (exit code {process.exitcode}: "
                          f"killed, or out of memory?)")
                self.store.mark_failed(stage, reason)
                outcome = ("failed", reason)
            del self.busy[share]
            if outcome[0] == "disk full":
                self.stop()
                raise DiskFull(outcome[1])
            ended.append((stage, outcome[1]))
        return ended

    def stop(self) -> None:
        """End the workers: idle ones when told, busy ones at once (their stages keep their checkpoints)."""
        for share, (process, pipe) in self.workers.items():
            if share in self.busy or not process.is_alive():
                process.kill()
            else:
                try:
                    pipe.send(None)
                except OSError:
                    process.kill()
            process.join()
            pipe.close()
        self.workers.clear()
        self.busy.clear()


def compute_all(stages: list[Stage], store: Store, say_epochs: bool = False,
                poll_s: float = 1.0) -> dict[str, str | None]:
    """Compute these independent stages all at once; each stage's failure (None: done), by stage name."""
    workers = SideBySide(len(stages), store, say_epochs)
    outcome: dict[str, str | None] = {}
    try:
        for stage in stages:
            workers.start(stage)
        while workers.busy:
            for stage, failure in workers.wait(poll_s):
                outcome[stage.name] = failure
    finally:
        workers.stop()
    return outcome
