"""How far each stage of a sweep is, and how long the rest takes, from the files the stages write: meta.json when
done, failed.json when failed, progress.json while computing (bench.run.runner writes it when the stage starts and
after every epoch: the epoch, the loss, when this attempt started and its seconds per epoch so far).

Rates are seconds per epoch: a running stage's own, measured over this attempt; a stage not started is estimated
from the finished and running stages of the same kind (their mean), and is unknown while there are none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.run.store import Store, read_json


@dataclass(frozen=True)
class StageNow:
    name: str
    kind: str
    epochs: int
    state: str                     # done, failed, computing, waiting
    epoch: int = 0                 # epochs done (computing: of all attempts)
    loss: float | None = None      # the latest epoch's
    elapsed: float | None = None   # seconds: of this attempt (computing), of the computation (done)
    per_epoch: float | None = None  # seconds per epoch measured
    worker: dict | None = None     # who computes it (computing): host, pid, slurm_job_id


def read_stage(store: Store, stage: dict) -> StageNow:
    """A sweep file's stage entry (name, kind, epochs) as its files say it is now."""
    folder = store.root / "stages" / stage["name"]
    base = dict(name=stage["name"], kind=stage["kind"], epochs=stage["epochs"])
    meta = read_json(folder / "meta.json")
    if meta is not None:
        history = meta.get("history") or []
        loss = history[-1].get("loss") if history else None
        return StageNow(**base, state="done", epoch=stage["epochs"], loss=loss, elapsed=meta["seconds"],
                        per_epoch=meta["seconds"] / max(1, len(history)))
    if (folder / "failed.json").is_file():
        return StageNow(**base, state="failed")
    progress = read_json(folder / "progress.json")
    if progress is None:
        return StageNow(**base, state="waiting")
    return StageNow(**base, state="computing", epoch=progress.get("epoch") or 0, loss=progress.get("loss"),
                    elapsed=max(0.0, time.time() - progress["started"]), per_epoch=progress.get("per_epoch"),
                    worker=progress.get("worker"))


class Tracker:
    """The stages of a sweep (sweep file entries by name), read again at each `refresh`; finished ones once."""

    def __init__(self, store: Store, stages: dict[str, dict]):
        self.store, self.stages = store, stages
        self.now: dict[str, StageNow] = {}

    def refresh(self) -> Tracker:
        for name, stage in self.stages.items():
            if name not in self.now or self.now[name].state not in ("done", "failed"):
                self.now[name] = read_stage(self.store, stage)
        rates: dict[str, list[float]] = {}
        for s in self.now.values():
            if s.per_epoch is not None:
                rates.setdefault(s.kind, []).append(s.per_epoch)
        self.rates = {kind: sum(found) / len(found) for kind, found in rates.items()}
        return self

    def left(self, name: str) -> float | None:
        """Seconds until the stage is done, at the measured rates; None: unknown."""
        s = self.now[name]
        if s.state in ("done", "failed"):
            return 0.0
        rate = s.per_epoch if s.per_epoch is not None else self.rates.get(s.kind)
        return None if rate is None else (s.epochs - s.epoch) * rate

    def total_left(self, names: list[str]) -> float | None:
        """Seconds of work left in these stages, one after another; None when one is unknown."""
        found = [self.left(n) for n in dict.fromkeys(names)]
        return None if None in found else sum(found)

    def sweep_left(self, parallel: int | None) -> float | None:
        """Seconds until every stage is done: level by level of the stage graph, `parallel` stages at a time (None:
        all of a level at once); None when a stage's time is unknown."""
        level: dict[str, int] = {}
        for name, stage in self.stages.items():  # a sweep file lists inputs first
            level[name] = 1 + max((level.get(i, -1) for i in stage["inputs"]), default=-1)
        total = 0.0
        for depth in set(level.values()):
            found = [self.left(n) for n, d in level.items() if d == depth]
            if None in found:
                return None
            total += sum(found) / parallel if parallel else max(found, default=0.0)
        return total


def clock(seconds: float | None) -> str:
    """Seconds as h:mm:ss; "?" when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
