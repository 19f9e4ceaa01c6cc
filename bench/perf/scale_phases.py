"""One size of the scale rehearsal, in a process of its own (so that its peak memory is its own): write
emg2pose-shaped recordings with the simulator, then go through each phase a real run goes through on them, timed,
with the process's memory sampled all along.

Phases: the integrity scan and data check (`cpep-bench data check`'s survey), the window cache of every selection
(time and bytes on disk), one pre-training epoch's data path alone and with the default model (EMG-MAE, as a stage
trains), the evaluation's embedding of the probe selections, the linear probe's fit and zero-shot.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import torch

from bench import plugins
from cpep.data.emg2pose import SELECTIONS
from cpep.synth.config import SynthConfig

SAMPLE_S = 0.05  # how often the memory is read


def recorded_seconds_per_user(synth: SynthConfig) -> float:
    """Seconds of recordings the simulator writes per user (every session, hand and stage)."""
    from cpep.synth.simulator import FREEFORM, FREEFORM_LENGTH, stages
    stage = sum(synth.stage_seconds * (FREEFORM_LENGTH if s == FREEFORM else 1) for s in stages(synth.stages))
    return stage * synth.sessions * len(synth.sides)


def sized(synth: dict, hours: float) -> dict:
    """The synthetic dataset's settings for about `hours` of recordings: as many users as that takes, a third of
    them held out for testing."""
    users = max(2, math.ceil(hours * 3600 / recorded_seconds_per_user(SynthConfig(**synth))))
    return {**synth, "users": users, "test_users": max(1, users // 3), "val_users": 0}


def _status() -> dict[str, int]:
    """The process's resident memory now, in bytes: anonymous (its own) and file-backed (mapped files' pages)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile"):
                out[name] = int(value.split()[0]) * 1024
    return out


class Memory:
    """The peak anonymous and file-backed resident memory of this process, per phase, read every SAMPLE_S
    seconds by a thread (Linux; elsewhere the process's peak resident set size alone)."""

    def __init__(self):
        self.linux = os.path.exists("/proc/self/status")
        self.peaks: dict[str, dict[str, int]] = {}
        self.phase, self._stop = None, threading.Event()

    def __enter__(self):
        if self.linux:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(SAMPLE_S):
            self._record()

    def _record(self):
        if self.phase is None:
            return
        now = _status() if self.linux else {}
        peak = self.peaks.setdefault(self.phase, {"RssAnon": 0, "RssFile": 0})
        for name, value in now.items():
            peak[name] = max(peak[name], value)

    def __exit__(self, *exc):
        self._stop.set()
        if self.linux:
            self._thread.join()
        return False


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def measure_size(hours: float, overrides: dict, scratch: str, report) -> dict:
    """Every phase at `hours` of recordings in `scratch`: {phase: {seconds, ...}} and what was measured.
    `report(phase)` is called as each phase begins."""
    from cpep.nn.train import pick_device
    from cpep.threads import use_threads
    cfg = plugins.resolve(overrides)
    cfg["data"]["synth"] = sized(cfg["data"]["synth"], hours)
    use_threads(cfg["train"]["threads"])
    device = pick_device(cfg["train"]["device"])
    root, cache = Path(scratch) / f"data-{hours:g}h", Path(scratch) / f"cache-{hours:g}h"
    phases: dict[str, dict] = {}
    memory = Memory()

    def timed(name: str, work):
        report(name)
        memory.phase = name
        memory._record()
        if device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        value = work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        phases[name] = {"seconds": time.perf_counter() - began}
        memory._record()
        return value

    with memory:
        from cpep.synth.simulator import generate
        timed("generate", lambda: generate(SynthConfig(**cfg["data"]["synth"]), root))
        data_bytes = _du(root)
        survey = timed("data check", lambda: _survey(cfg, root, cache))
        data = _open(cfg, root, cache)
        timed("window cache", lambda: [data.selection(name).packed() for name in SELECTIONS])
        pretrain = data.selection("pretrain")
        timed("epoch, data path", lambda: _data_path(cfg, pretrain, device))
        timed("epoch, default model", lambda: _mae_epoch(cfg, data, device))
        emb = _embeddings(cfg, data)
        embedded = timed("embed", lambda: _embed(cfg, data, emb, device))
        timed("linear probe", lambda: _linear_probe(cfg, data, embedded))
        timed("zero-shot", lambda: _zero_shot(cfg, data, embedded, device))
    for name, peak in memory.peaks.items():
        phases[name].update(anon_mb=peak["RssAnon"] / 2**20, file_mb=peak["RssFile"] / 2**20)
    window_hours = cfg["data"]["stride"] / plugins.get("dataset", "emg2pose").sample_rate / 3600
    return {"hours": hours, "recorded_hours": survey.hours, "pretrain_hours": len(pretrain) * window_hours,
            "users": cfg["data"]["synth"]["users"], "data_bytes": data_bytes, "cache_bytes": _du(cache),
            "windows": {name: len(data.selection(name)) for name in SELECTIONS},
            "problems": survey.problems, "phases": phases, "device": str(device),
            "torch_threads": torch.get_num_threads()}


def _survey(cfg: dict, root: Path, cache: Path):
    from bench.check.survey import survey
    return survey({**cfg, "data": {**cfg["data"], "name": "emg2pose", "root": str(root)}}, root, cache)


def _open(cfg: dict, root: Path, cache: Path):
    from cpep.config import Data
    from cpep.data.emg2pose import open_data
    return open_data(Data.of(cfg), root, cache)


def _data_path(cfg: dict, windows, device: torch.device) -> None:
    """Every batch of one epoch, as a stage's loop draws them (held in memory or gathered from the cache)."""
    from cpep.nn.train import Batches
    batches = Batches(windows, cfg["mae"]["batch_size"], device, seed=0,
                      in_memory_bytes=cfg["data"]["in_memory_gb"] * 1e9, workers=cfg["train"]["workers"])
    for batch in batches.epoch(0):
        batch["emg"].sum()


def _mae_epoch(cfg: dict, data, device: torch.device) -> None:
    """One epoch of the EMG-MAE stage with the default model, built by its Step and fitted by the stage's loop."""
    from bench.methods import emg_mae
    from bench.perf.steps import context
    from cpep.nn.train import Schedule, train
    step = emg_mae.STEP
    training = step.build(context(step, "emg_mae", cfg, data, device))
    schedule = Schedule.of(plugins.sections()[step.schedule].of({**cfg, "mae": {**cfg["mae"], "epochs": 1}}))
    train(training, schedule, device, 0, in_memory_bytes=cfg["data"]["in_memory_gb"] * 1e9,
          workers=cfg["train"]["workers"])


def _embeddings(cfg: dict, data):
    """CPEP's embeddings, from an untrained model: the evaluation's work does not depend on the weights."""
    from bench.methods import cpep
    return plugins.get("method", "cpep").embeddings(cfg, data, {"align": cpep.aligned(cfg, data).state_dict()})


def _embed(cfg: dict, data, emb, device: torch.device) -> dict:
    from cpep.probes import embed
    emb.model.to(device).eval()
    d = cfg["data"]
    out = {}
    for kind in ("id", "unseen"):
        for field, side in (("lp", "train"), ("lp", "test"), ("zs_reference", "train"), ("zs_query", "test")):
            out[field, kind, side] = embed(getattr(emb, field), data.selection(f"{kind}_{side}"), device,
                                           in_memory_bytes=d["in_memory_gb"] * 1e9, workers=cfg["train"]["workers"])
    return out


def _linear_probe(cfg: dict, data, embedded: dict) -> None:
    from cpep.probes import linear_probe_predictions
    lp = cfg["linear_probe"]
    for kind in ("id", "unseen"):
        (x, y), (test, _) = embedded["lp", kind, "train"], embedded["lp", kind, "test"]
        linear_probe_predictions(x, y, test, len(data.vocab.classes(kind)), lp["weight_decay"], lp["max_iter"])


def _zero_shot(cfg: dict, data, embedded: dict, device: torch.device) -> None:
    from cpep.probes import zero_shot_predictions
    for kind in ("id", "unseen"):
        (refs, labels), (queries, _) = embedded["zs_reference", kind, "train"], embedded["zs_query", kind, "test"]
        zero_shot_predictions(queries, refs, labels, len(data.vocab.classes(kind)), cfg["zero_shot"]["k"], device)
