"""Computing one stage: read its inputs from the store, train or evaluate, write its output atomically.

A training stage checkpoints while it runs; started again after an interruption (a killed process, a requeued
SLURM job), it resumes from the last checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from baselines import supervised
from bench import provenance
from bench.planner import NO_ZERO_SHOT, Run, Stage
from bench.store import Store
from cpep import pipeline
from cpep.errors import DataError
from cpep.train import pick_device

EPOCHS_OF = {"pose_mae": "mae", "emg_mae": "mae", "align": "align", "poset": "supervised", "emg2pose": "supervised"}


def epochs(stage: Stage) -> int:
    section = EPOCHS_OF.get(stage.kind)
    return stage.config[section]["epochs"] if section else 1


def data_root(cfg: dict, store: Store) -> Path:
    if cfg["data"]["name"] == "synthetic":
        return store.synthetic_root(cfg["data"]["synth"])
    root = Path(cfg["data"]["root"]).expanduser()
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a directory")
    return root


def _evaluation_models(stage: Stage, store: Store):
    """(lp features, zs query, zs reference) functions of (emg, pose) for the method's trained model."""
    (kind, key), = stage.inputs
    state, cfg = store.load_model(kind, key), stage.config
    if stage.method == "cpep":
        model = pipeline.Aligned(cfg)
        model.load_state_dict(state)
        return model, (lambda e, p: model.emg(e)), (lambda e, p: model.emg_query(e)), (lambda e, p: model.pose(p))
    if stage.method in ("emg_mae", "pose_mae"):
        modality = stage.method[:-4]
        model = pipeline.make_encoder(modality, cfg)
        model.load_state_dict(state)
        features = (lambda e, p: model(e)) if modality == "emg" else (lambda e, p: model(p))
        return model, features, None, None
    model = supervised.build(stage.method, cfg)
    model.load_state_dict(state)
    return model, (lambda e, p: model.embed(e)), None, None


def execute(stage: Stage, store: Store, on_epoch: Callable[[int, dict], None] | None = None) -> dict:
    """Compute `stage` (its inputs must be done) and store it; returns its meta."""
    cfg = stage.config
    device = pick_device(cfg["train"]["device"])
    data = pipeline.open_data(cfg, data_root(cfg, store), store.cache_dir)
    began = time.time()
    checkpoint = store.checkpoint_path(stage) if stage.kind != "eval" else None
    inputs = dict(stage.inputs)
    state, history, metrics = None, [], None
    if stage.kind in ("pose_mae", "emg_mae"):
        state, history = pipeline.pretrain_mae(stage.kind[:-4], cfg, data, stage.seed, device, checkpoint, on_epoch)
    elif stage.kind == "align":
        pose_state = store.load_model("pose_mae", inputs["pose_mae"])
        emg_state = store.load_model("emg_mae", inputs["emg_mae"]) if "emg_mae" in inputs else None
        state, history = pipeline.align(cfg, data, stage.seed, device, pose_state, emg_state, checkpoint, on_epoch)
    elif stage.kind in ("poset", "emg2pose"):
        state, history = supervised.train(stage.kind, cfg, data, stage.seed, device, checkpoint, on_epoch)
    elif stage.kind == "eval":
        model, lp, zs_query, zs_reference = _evaluation_models(stage, store)
        model.to(device).eval()
        metrics = pipeline.evaluate(cfg, data, device, lp, zs_query, zs_reference)
        if on_epoch:
            on_epoch(1, {})
    else:
        raise ValueError(f"unknown stage kind {stage.kind!r}")
    meta = {
        "kind": stage.kind, "key": stage.key, "seed": stage.seed, "seconds": round(time.time() - began, 3),
        "history": history, "metrics": metrics, "finished": provenance.now(),
        "device": provenance.describe_device(device),
    }
    store.save_stage(stage, meta, state)
    return meta


def record(run: Run, status: str, store: Store, error: str | None = None) -> dict:
    """The run's record: metrics (when done), config, seed, per-stage timings and curves, provenance."""
    stages, metrics = [], None
    for stage in run.stages:
        meta = store.stage_meta(stage)
        entry = {"kind": stage.kind, "key": stage.key, "status": "done" if meta else "missing"}
        if meta:
            entry.update(seconds=meta["seconds"], history=meta["history"], device=meta["device"])
            if stage.kind == "eval":
                metrics = meta["metrics"]
        stages.append(entry)
    reasons = {m: why for m in ("zs_id", "zs_unseen") if (why := NO_ZERO_SHOT.get(run.variant.method))}
    return {
        "schema": 1, "suite": run.suite, "variant": run.variant.name, "label": run.variant.label,
        "method": run.variant.method, "group": run.variant.group, "dataset": run.dataset, "seed": run.seed,
        "run_key": run.key, "status": status, "error": error,
        "metrics": metrics if status == "done" else None, "not_applicable": reasons,
        "config": run.config, "stages": stages,
        "seconds": round(sum(s.get("seconds", 0.0) for s in stages), 3),
        "provenance": provenance.collect(pick_device(run.config["train"]["device"])), "updated": provenance.now(),
    }
