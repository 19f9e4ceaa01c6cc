"""The sweep suites: the alignment on a fraction of the pre-training windows, synthetic users that differ more or
less, and what the report draws and tabulates for them."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY, random_encoders
from rich.console import Console
from test_report import make_record

from bench import plugins
from bench.methods import cpep
from bench.report import build as report
from bench.report.frames import SEED_SOURCES
from bench.run.planner import plan
from bench.run.store import Store
from bench.suites import load as load_suite
from cpep.config import Data
from cpep.data.emg2pose import open_data
from cpep.errors import ConfigError

CPU = torch.device("cpu")


# ------------------------------------------------------------------ data fraction

def aligned_windows(data, **overrides) -> list:
    """Train the alignment one epoch on the tiny data; returns the windows its batches were drawn from."""
    seen = []

    def spy(ctx):
        training = cpep.build(ctx)
        seen.append(training.windows)
        return training

    cfg = plugins.resolve(TINY, {"align.epochs": 1} | overrides)
    torch.manual_seed(7)
    _, history = plugins.train(cpep.ALIGN, plugins.Context(cfg, data, 0, CPU, random_encoders(cfg, data)), spy)
    assert len(history) == 1
    return seen


def pairs(windows) -> set:
    return set(zip(windows.recording.tolist(), windows.starts.tolist()))


def test_the_alignment_reads_the_stated_fraction_of_windows(tiny_data, monkeypatch):
    data = open_data(Data.of(plugins.resolve(TINY)), tiny_data)
    every = data.selection("pretrain")
    (full,) = aligned_windows(data)
    assert len(full) == len(every)
    (part,) = aligned_windows(data, **{"data.fraction": 0.2})
    assert len(part) == round(0.2 * len(every)) and pairs(part) <= pairs(every)
    (again,) = aligned_windows(data, **{"data.fraction": 0.2})
    (other,) = aligned_windows(data, **{"data.fraction": 0.2, "seeds.data": 5})
    assert pairs(again) == pairs(part) and pairs(other) != pairs(part)  # drawn by the data seed
    assert plugins.resolve(TINY, {"data.fraction": 0.5})["data"]["fraction"] == 0.5  # any fraction in (0, 1]
    for outside in (0.0, 1.5):
        with pytest.raises(ConfigError, match=f"data.fraction must be > 0, <= 1, not {outside}"):
            plugins.resolve(TINY, {"data.fraction": outside})


def test_the_fraction_changes_the_alignment_stage_only():
    runs = {r.variant.name: r for r in plan(load_suite("data_fraction"), (0,), overrides=TINY)}
    assert set(runs) == {"cpep", "fraction40", "fraction20", "fraction10", "emg_log_power", "pose_features"}
    runs = {name: r for name, r in runs.items() if r.variant.method == "cpep"}
    keys = {v: {s.kind: s.key for s in r.stages} for v, r in runs.items()}
    assert len({k["pose_mae"] for k in keys.values()}) == 1 and len({k["emg_mae"] for k in keys.values()}) == 1
    assert len({k["align"] for k in keys.values()}) == 4


def test_the_data_seed_is_in_a_stage_key_only_where_it_draws_something():
    def keys(**overrides):
        runs = plan(load_suite("variance"), (0, 1, 2), variants=["vary_data", "vary_init"], overrides=TINY | overrides)
        return {(r.variant.name, r.seed): {s.kind: s.key for s in r.stages} for r in runs}

    def distinct(found, variant, kind):
        return len({found[(variant, s)][kind] for s in (0, 1, 2)})

    fixed_data = keys(**{"data.synth.seed_per_run": False})  # as on emg2pose: the data seed chooses no users
    assert all(distinct(fixed_data, "vary_data", k) == 1 for k in ("pose_mae", "emg_mae", "align"))
    assert all(distinct(fixed_data, "vary_init", k) == 3 for k in ("pose_mae", "emg_mae", "align"))
    assert all(distinct(keys(), "vary_data", k) == 3 for k in ("pose_mae", "emg_mae", "align"))  # users per seed
    part = keys(**{"data.synth.seed_per_run": False, "data.fraction": 0.4})  # the data seed draws the windows
    assert distinct(part, "vary_data", "align") == 3 and distinct(part, "vary_data", "emg_mae") == 1


# ------------------------------------------------------------------ cross-user

def test_the_cross_user_levels_reach_the_generated_data(tmp_path):
    runs = plan(load_suite("cross_user"), overrides=TINY)
    assert len(runs) == 36
    assert {r.variant.method for r in runs} == {"cpep", "emg_mae", "emg_log_power", "pose_features"}
    store = Store(tmp_path)
    by_level = {r.variant.name.rsplit("_", 1)[1]: r for r in runs if r.variant.method == "cpep" and r.seed == 0}
    roots = {level: store.synthetic_root(by_level[level].config["data"]["synth"]) for level in ("low", "high")}
    assert roots["low"] != roots["high"]
    assert "'ring_rotation': 1.0" in (roots["low"] / "SYNTHETIC.txt").read_text()
    assert "'ring_rotation': 4.0" in (roots["high"] / "SYNTHETIC.txt").read_text()
    name = sorted(p.name for p in roots["low"].glob("*.hdf5"))[0]
    emg = {}
    for level, root in roots.items():
        with h5py.File(root / name) as f:
            emg[level] = f["emg2pose/timeseries"]["emg"][:]
    assert emg["low"].shape == emg["high"].shape and not np.array_equal(emg["low"], emg["high"])
    # both levels' floor runs read the same data as their CPEP runs
    floor = next(r for r in runs if r.variant.name == "floor_low" and r.seed == 0)
    assert floor.config["data"]["synth"] == by_level["low"].config["data"]["synth"]


# ------------------------------------------------------------------ the report

SWEEP_SUITE = """
description = "fixture sweeps"
seeds = [0, 1, 2]

[[variants]]
name = "vary_init"
method = "cpep"
label = "init varied"
set = { "seeds.order" = 0, "seeds.data" = 0 }

[[variants]]
name = "vary_order"
method = "cpep"
label = "order varied"
set = { "seeds.init" = 0, "seeds.data" = 0 }

[[variants]]
name = "fraction10"
method = "cpep"
label = "10 %"
group = "data_fraction"
set = { "data.fraction" = 0.1 }

[[variants]]
name = "fraction20"
method = "cpep"
label = "20 %"
group = "data_fraction"
set = { "data.fraction" = 0.2 }

[[variants]]
name = "floor_high"
method = "emg_log_power"
label = "floor, high"
group = "bounds"
set = { "data.synth.ring_rotation" = 4.0 }
"""

LP = {"vary_init": (0.50, 0.56, 0.53), "vary_order": (0.50, 0.51, 0.52), "fraction10": (0.40, 0.42, 0.41),
      "fraction20": (0.44, 0.45, 0.46), "floor_high": (0.30, 0.31, 0.32)}


def test_the_report_tabulates_each_seed_source_and_draws_the_sweeps(tmp_path):
    path = tmp_path / "sweeps.toml"
    path.write_text(SWEEP_SUITE)
    suite = load_suite(str(path))
    records = [make_record(suite, v, s, (x, 0.3, 0.3, 0.3)) for v, xs in LP.items() for s, x in enumerate(xs)]
    for r in records:
        r["method"] = suite.variant(r["variant"]).method
    rep = report.build(suite, records)
    v = rep.variance.set_index(["source", "metric"])
    assert set(rep.variance["source"]) == {"init", "order"} and set(SEED_SOURCES) >= set(rep.variance["source"])
    assert v.loc[("init", "lp_id"), "variance"] == pytest.approx(np.var(LP["vary_init"], ddof=1))
    assert v.loc[("order", "lp_id"), "variance"] == pytest.approx(np.var(LP["vary_order"], ddof=1))
    assert v.loc[("init", "lp_unseen"), "variance"] == 0 and v.loc[("init", "lp_id"), "n"] == 3

    console = Console(record=True, width=200)
    store = Store(tmp_path / "results")
    for r in records:
        target = store.record_path(r["suite"], f"{r['dataset']}-{r['data_key']}", r["variant"], r["seed"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(r))
    out = report.show(suite, store, console, out=tmp_path / "rep", full=True)  # the variance table: --full
    text = console.export_text()
    assert "model initialisation: init varied" in text and "data order: order varied" in text
    assert "variance.md" in {p.name for p in out.iterdir()} and "variance.csv" in {p.name for p in out.iterdir()}
    assert f"{np.var(LP['vary_init'], ddof=1):.5f}" in (out / "variance.md").read_text()
    drawn = {p.name for p in out.iterdir()}
    assert {"data_fraction.png", "data_fraction.svg", "user_variability.png", "user_variability.svg"} <= drawn


def test_data_that_follows_the_data_seed_is_no_configuration_difference(tmp_path):
    path = tmp_path / "sweeps.toml"
    path.write_text(SWEEP_SUITE.replace('name = "vary_order"', 'name = "vary_data"')
                    .replace('"seeds.init" = 0, "seeds.data" = 0', '"seeds.init" = 0, "seeds.order" = 0'))
    suite = load_suite(str(path))
    # as planned: the synthetic data's seed is the data seed (fixed at 0 for vary_init, the run seed for vary_data)
    records = [make_record(suite, v, s, (0.5, 0.3, 0.3, 0.3), **{"data.synth.seed": s if v == "vary_data" else 0})
               for v in ("vary_init", "vary_data") for s in (0, 1, 2)]
    assert report.config_differences(records, suite) == []
    records[1]["config"]["data"]["synth"]["seed"] = 7  # vary_init seed 1 on other data
    assert any("data.synth.seed" in note for note in report.config_differences(records, suite))
