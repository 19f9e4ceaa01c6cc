"""`cpep-bench run --plan`: the stages of a suite to compute and to reuse, and their hours quoted from a real
`perf --quick` file for the device, on tiny settings."""

from __future__ import annotations

import json

import pytest
from conftest import TINY, tiny_args
from test_cli import assert_one_line_error, cli

from bench import plugins
from bench.perf import files, quote, steps
from bench.run import planner
from bench.run.store import Store
from bench.suites import load


@pytest.fixture(scope="module")
def measured(make_results, tmp_path_factory):
    """A runs directory with a perf file of this machine's CPU, and the smoke suite's Pose-MAE run done."""
    results = make_results(tmp_path_factory.mktemp("plan"))
    cli("perf", "--quick", "--device", "cpu", "--runs-dir", results, *tiny_args())
    cli("run", "--suite", "smoke", "--variants", "pose_mae", "--device", "cpu", "--runs-dir", results, *tiny_args())
    return results


def smoke_runs():
    return planner.plan(load("smoke"), overrides={**TINY, "train.device": "cpu"})


def test_the_quote_lists_the_stages_to_compute_and_reuse_with_their_hours(measured):
    out = cli("run", "--suite", "smoke", "--plan", "--device", "cpu", "--runs-dir", measured, *tiny_args()).stdout
    perf = files.latest(measured / "perf", "cpu")
    assert f"ratesfrom{perf}" in "".join(out.split())  # a long path may wrap
    assert "compute" in out and "reuse" in out and "total" in out
    assert "~" not in out  # perf timed these very configurations

    store = Store(measured)
    document = json.loads(perf.read_text())
    runs = smoke_runs()
    data = plugins.get("dataset", "synthetic").open(runs[0].config, store)
    rows = quote.estimate(runs, store, document, lambda cfg: data)
    by_stage = {(r["kind"], r["key"]): r for r in rows}
    assert len(rows) == len(planner.unique_stages(runs))
    reused = {r["kind"] for r in rows if r["reuse"]}
    assert "pose_mae" in reused and "align" not in reused  # the Pose-MAE run's stage, which CPEP shares
    windows = len(data.selection("pretrain"))
    rate = {r["work"]: r["rate"] for r in document["rows"]  # the eager rows (perf also times variants of a stage)
            if r["section"] == "step" and not r["kind"].endswith(("_compiled", "_uncached"))}
    for stage in planner.unique_stages(runs):
        r = by_stage[stage.kind, stage.key]
        if stage.kind == planner.EVAL:
            assert r["hours"] is None
        elif stage.kind in ("pose_mae", "emg_mae", "align"):
            expected = planner.epochs(stage) * windows / rate[steps.work_key(stage.kind, stage.config)] / 3600
            assert r["hours"] == pytest.approx(expected) and not r["approximate"]
    for line in out.splitlines():
        assert len(line) <= 80, line


def test_another_configuration_is_quoted_at_the_default_models_rate_and_marked(measured):
    out = cli("run", "--suite", "smoke", "--plan", "--device", "cpu", "--runs-dir", measured, *tiny_args(),
              "--set", "encoder.depth=3").stdout  # --quick timed depths 1 and 2
    assert "~" in out and "another configuration" in out


def test_without_a_perf_file_for_the_device_it_says_how_to_make_one(measured):
    out = cli("run", "--suite", "smoke", "--plan", "--device", "cuda", "--runs-dir", measured, *tiny_args()).stdout
    flat = "".join(out.split())  # long paths may wrap
    assert f"noperffileforcudain{measured / 'perf'}" in flat
    assert f"cpep-benchperf--devicecuda--runs-dir{measured}" in flat
    assert "reuse" not in out.split("kind")[0]  # bf16 stages on a GPU: none is in the runs directory


def test_a_perf_file_that_is_not_there_is_a_one_line_error(tmp_path):
    result = cli("run", "--suite", "smoke", "--plan", "--perf", tmp_path / "nope.json", "--runs-dir", tmp_path, check=False)
    assert_one_line_error(result, "--perf")
    assert not (tmp_path / "data").exists()
