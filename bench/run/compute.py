"""Computing one stage: read its inputs from the store, train or evaluate, write its output atomically.

A training stage checkpoints while it runs; started again after an interruption (a killed process, a requeued
SLURM job), it resumes from the last checkpoint.
"""

from __future__ import annotations

import time
from typing import Callable

from bench import plugins
from bench.run import provenance
from bench.run.planner import EVAL, Run, Stage, step_of
from bench.run.store import Store
from cpep import config
from cpep.threads import use_threads


def execute(stage: Stage, store: Store, on_epoch: Callable[[int, dict], None] | None = None) -> dict:
    """Compute `stage` (its inputs must be done) and store it; returns its meta."""
    from bench.run.evaluation import evaluate
    from cpep.nn.train import pick_device

    cfg = stage.config
    use_threads(cfg["train"]["threads"])  # recorded with the device: CPU numbers depend on it
    device = pick_device(cfg["train"]["device"])
    precision = provenance.precision(device)
    if precision != stage.precision:
        raise RuntimeError(f"this stage was planned for {stage.precision} but runs in {precision} on {device}: "
                           f"plan it where it runs (train.device, or the SLURM profile's GPUs)")
    data = plugins.get("dataset", cfg["data"]["name"]).open(cfg, store)
    began = time.time()
    models = {kind: store.load_model(kind, key) for kind, key in stage.inputs}
    state, history, metrics, not_applicable, breakdowns = None, [], None, None, {}
    if stage.kind == EVAL:
        metrics, not_applicable, breakdowns = evaluate(cfg, data, device, plugins.get("method", stage.method),
                                                       models, config.seeds(cfg, stage.seed).order)
        if on_epoch:
            on_epoch(1, {})
    else:
        context = plugins.Context(cfg, data, stage.seed, device, models, store.checkpoint_path(stage), on_epoch)
        state, history = plugins.train(step_of(stage), context)
    meta = {
        "kind": stage.kind, "key": stage.key, "config_key": stage.config_key, "code": stage.code,
        "seed": stage.seed, "seconds": round(time.time() - began, 3), "history": history, "metrics": metrics,
        "not_applicable": not_applicable, **breakdowns, "finished": provenance.now(),
        "environment": provenance.environment(device, cfg["train"]["compile"] and stage.kind != EVAL),
        "git": provenance.git_state(),
    }
    store.save_stage(stage, meta, state)
    return meta


def record(run: Run, status: str, store: Store, error: str | None = None, error_log: str | None = None) -> dict:
    """The run's record: metrics and their breakdowns (when done), config, seed, per-stage timings, curves and
    provenance."""
    from bench.run.evaluation import BREAKDOWNS
    from cpep.nn.train import pick_device

    stages, metrics, not_applicable, breakdowns = [], None, {}, {}
    for stage in run.stages:
        meta = store.stage_meta(stage)
        entry = {"kind": stage.kind, "key": stage.key, "code": stage.code, "stale": stage.stale,
                 "status": "done" if meta else "missing"}
        if meta:
            entry.update(seconds=meta["seconds"], history=meta["history"], environment=meta["environment"],
                         git=meta.get("git"), finished=meta["finished"])
            if stage.kind == EVAL:
                metrics, not_applicable = meta["metrics"], meta.get("not_applicable") or {}
                breakdowns = {field: meta[field] for field in BREAKDOWNS.values() if meta.get(field)}
        stages.append(entry)
    return {
        "schema": 3, "suite": run.suite, "variant": run.variant.name, "label": run.variant.label,
        "method": run.variant.method, "group": run.variant.group, "dataset": run.dataset, "seed": run.seed,
        "data_key": run.data_key, "data_identity": run.data_identity, "data_root": run.config["data"]["root"],
        "code": run.code, "run_key": run.key, "status": status, "error": error, "error_log": error_log, "stale": run.stale,
        "metrics": metrics if status == "done" else None, "not_applicable": not_applicable,
        **(breakdowns if status == "done" else {}),
        "config": run.config, "stages": stages,
        "seconds": round(sum(s.get("seconds", 0.0) for s in stages), 3),
        "provenance": provenance.collect(pick_device(run.config["train"]["device"])), "updated": provenance.now(),
    }
