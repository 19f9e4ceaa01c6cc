"""Stage keys are derived from what a stage sees: a plug-in's own section keys its stages without being named, a
stage cannot read what its key does not hold, a metric keys only the evaluations it applies to, and the run-only
keys change no number."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY

from bench import plugins
from bench.methods import emg_mae
from bench.run.planner import plan
from bench.suites import load as load_suite
from cpep import config
from cpep.config import Data
from cpep.data.emg2pose import open_data
from cpep.errors import ConfigError

PLUGINS = Path(__file__).parent / "plugins"
CNN_SUITE = """
description = "CPEP with a CNN EMG encoder beside CPEP and the floor"
seeds = [0]
plugins = ["{plugins}"]

[[variants]]
name = "cnn"
method = "cnn_cpep"

[[variants]]
name = "cpep"
method = "cpep"

[[variants]]
name = "floor"
method = "emg_log_power"
"""


@pytest.fixture
def cnn_suite(tmp_path):
    path = tmp_path / "cnn.toml"
    path.write_text(CNN_SUITE.format(plugins=PLUGINS))
    return load_suite(str(path))


def keys(suite, **overrides) -> dict[str, dict[str, str]]:
    """Per variant, its stages' keys by kind."""
    return {r.variant.name: {s.kind: s.key for s in r.stages} for r in plan(suite, overrides=TINY | overrides)}


def test_a_plugin_section_named_nowhere_keys_the_stages_of_its_file(cnn_suite):
    before, after = keys(cnn_suite), keys(cnn_suite, **{"cnn.kernel": 5})
    assert after["cnn"]["cnn_align"] != before["cnn"]["cnn_align"]  # its own section, in its own file
    assert after["cnn"]["eval"] != before["cnn"]["eval"]
    # what does not read the cnn section keeps its key: the shared Pose-MAE, CPEP's stages, the floor
    assert after["cnn"]["pose_mae"] == before["cnn"]["pose_mae"] == before["cpep"]["pose_mae"]
    assert after["cpep"] == before["cpep"] and after["floor"] == before["floor"]


def test_a_stage_cannot_read_what_its_key_does_not_hold(tiny_data):
    cfg = plugins.resolve(TINY)
    view = plugins.step_view(emg_mae.STEP, cfg)
    assert {"encoder", "emg", "mae", "data", "seeds", "train"} <= set(view)
    assert "align" not in view and "pose" not in view
    with pytest.raises(ConfigError, match="stage emg_mae read configuration section 'align', which it does not "
                                          "declare"):
        view["align"]
    # a key seen only where named: the MAE does not read the alignment's data fraction
    with pytest.raises(ConfigError, match="stage emg_mae read data.fraction, which it does not declare"):
        Data.of(view).fraction < 1.0
    # and the stage trains on what it sees
    ctx = plugins.Context(view, open_data(Data.of(cfg), tiny_data), 0, torch.device("cpu"), {})
    state, history = plugins.train(emg_mae.STEP, ctx)
    assert len(history) == cfg["mae"]["epochs"] and state


def test_a_metric_keys_only_the_evaluations_it_applies_to(cnn_suite):
    before, after = keys(cnn_suite), keys(cnn_suite, **{"zero_shot.k": 3})
    assert after["floor"]["eval"] == before["floor"]["eval"]  # the floor has no zero-shot: k is not its
    assert after["cpep"]["eval"] != before["cpep"]["eval"] and after["cnn"]["eval"] != before["cnn"]["eval"]
    assert after["cpep"]["align"] == before["cpep"]["align"]  # training does not read a metric's section
    probe = keys(cnn_suite, **{"linear_probe.max_iter": 7})
    assert probe["floor"]["eval"] != before["floor"]["eval"]


def test_an_objectives_own_parameter_keys_the_alignment_that_uses_it():
    suite = load_suite(str(PLUGINS / "suite.toml"))
    before, after = keys(suite), keys(suite, **{"emg_to_pose.label_smoothing": 0.1})
    assert after["cpep_one_way"]["align"] != before["cpep_one_way"]["align"]
    assert after["cpep_one_way"]["pose_mae"] == before["cpep_one_way"]["pose_mae"]
    assert after["envelope"] == before["envelope"]


def test_the_run_only_and_environment_keys_are_the_short_tested_lists():
    assert config.RUN_ONLY == ("data.root", "data.in_memory_gb", "train.workers", "train.checkpoint_every")
    assert config.ENVIRONMENT == ("train.device", "train.threads", "train.compile")
    suite = load_suite("smoke")
    base = keys(suite)
    for key, value in (("train.workers", 1), ("train.checkpoint_every", 3), ("data.in_memory_gb", 0.0),
                       ("train.threads", 2)):
        assert keys(suite, **{key: value}) == base, key
    assert keys(suite, **{"mae.lr": 5e-4}) != base  # anything else a stage sees is in its key


@pytest.mark.parametrize("key, value", [("train.workers", 1), ("train.checkpoint_every", 2),
                                        ("data.in_memory_gb", 0.0)])
def test_each_run_only_key_changes_no_weight(tiny_data, tmp_path, key, value):
    """Trained with the run-only key at its default and at another value: the same weights, bit for bit."""
    def trained(overrides: dict, folder: str) -> dict:
        cfg = plugins.resolve(TINY, overrides)
        data = open_data(Data.of(cfg), tiny_data)
        checkpoint = tmp_path / folder / "checkpoint.pt"
        checkpoint.parent.mkdir()
        ctx = plugins.Context(plugins.step_view(emg_mae.STEP, cfg), data, 0, torch.device("cpu"), {}, checkpoint)
        return plugins.train(emg_mae.STEP, ctx)[0]

    a, b = trained({}, "default"), trained({key: value}, "changed")
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_every_configuration_key_says_why_and_the_config_command_lists_it(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app
    found = plugins.sections()
    unexplained = [f"{name}.{f.name}" for name, cls in found.items() for f in cls.params() if not f.metadata["why"]]
    assert unexplained == []
    listed = CliRunner().invoke(app, ["config"], env={"COLUMNS": "300"})
    assert listed.exit_code == 0
    keys = [f"{name}.{f.name}" for name, cls in found.items() for f in cls.params()]
    assert len(keys) > 60 and all(key in listed.stdout for key in keys)
    assert "zero_shot.k" in listed.stdout and "> 0, <= 16384" in listed.stdout
    refused = CliRunner().invoke(app, ["config", "nope"])  # main() turns it into one line, exit 2
    assert "unknown configuration section 'nope'" in str(refused.exception)
