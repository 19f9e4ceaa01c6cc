"""Shared fixtures: a tiny configuration that trains every stage in seconds on a laptop CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytest-xdist starts its workers with COLUMNS=80 and LINES=24, as if they wrote to a terminal: the commands the
# tests run (and the console bench.options makes when first imported) would then squeeze their tables to 80
# columns. Each worker sees what a run in one process sees.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)

from bench import plugins
from bench.run.store import Store

# Small synthetic data and a small model: every stage of every method, 2 epochs.
TINY = {
    "data.synth.users": 4, "data.synth.test_users": 1, "data.synth.stage_seconds": 3.0,
    # One session of the one-gesture stages (synthetic-v1): what the tests of the reader and the harness name.
    "data.synth.sessions": 1, "data.synth.stages": "v1", "data.vocab": "synthetic-v1",
    "encoder.width": 32, "encoder.depth": 1, "encoder.heads": 2,
    "mae.epochs": 2, "mae.batch_size": 32, "mae.decoder_width": 16,
    "align.epochs": 2, "align.batch_size": 32,
    "supervised.epochs": 2, "supervised.batch_size": 32,
    "tds.width": 32, "tds.features": 16, "tds.decoder_hidden": 32,
    "linear_probe.max_iter": 50,
    # One torch thread: models this small gain nothing from two, and on a machine whose cores other processes hold,
    # OpenMP threads that wait for each other make a SLURM job's epochs take seconds instead of milliseconds.
    "train.threads": 1,
}


def random_encoders(cfg: dict, data) -> dict:
    """Pose and EMG encoders drawn from the current RNG: what an alignment reads as its MAE stages' outputs."""
    from cpep.pretraining import encoder
    return {"pose_mae": encoder("pose", cfg, data).state_dict(), "emg_mae": encoder("emg", cfg, data).state_dict()}


def tiny_args() -> list[str]:
    """TINY as `--set key=value` command-line arguments."""
    args = []
    for key, value in TINY.items():
        args += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    return args


@pytest.fixture(autouse=True)
def plugin_folders_stay_with_their_test(monkeypatch):
    """Loading a suite with `plugins` adds its folders to the environment; undo that after each test."""
    monkeypatch.setenv(plugins.ENV, os.environ.get(plugins.ENV, ""))


@pytest.fixture
def tiny_config() -> dict:
    return plugins.resolve(TINY)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The tiny synthetic dataset, generated once per test session."""
    from cpep.synth.config import SynthConfig
    from cpep.synth.simulator import generate
    root = tmp_path_factory.mktemp("data") / "tiny"
    synth = plugins.resolve(TINY)["data"]["synth"]
    return generate(SynthConfig(**synth), root)


@pytest.fixture(scope="session")
def make_results(tmp_path_factory):
    """A function that makes an empty runs directory whose synthetic data (the tiny dataset, generated once
    per session) is already there, so each test does not generate it again."""
    shared = tmp_path_factory.mktemp("shared-data")
    Store(shared).synthetic_root(plugins.resolve(TINY)["data"]["synth"])

    def make(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        (path / "data").symlink_to(shared / "data")
        return path

    return make
