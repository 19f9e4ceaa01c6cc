"""The floor and ceiling: methods that train nothing, a run that is only an evaluation stage, in every suite."""

from __future__ import annotations

from conftest import TINY, tiny_args
from test_cli import cli, records

from bench import plugins, suites
from bench.run import planner
from bench.run.fingerprint import closure
from bench.run.status import suite_status
from bench.run.store import Store

BOUNDS = {"emg_log_power": "floor: EMG log-power + LR", "pose_features": "ceiling: pose features + LR"}


def test_every_built_in_suite_has_the_floor_and_ceiling():
    for name in ("smoke", "paper", "ablations", "full"):
        found = {v.name: v for v in suites.load(name).variants}
        for variant, label in BOUNDS.items():
            assert (found[variant].method, found[variant].label, found[variant].group) == (variant, label, "bounds")


def test_a_method_without_training_is_one_evaluation_keyed_by_seed_data_and_feature_code():
    def evaluation(variant, seed=0, **overrides):
        (run,) = planner.plan(suites.load("bounds"), seeds=(seed,), variants=[variant],
                              overrides={**TINY, **overrides})
        assert [s.kind for s in run.stages] == ["eval"] and run.stages[0].inputs == ()
        return run.stages[0]

    for variant in BOUNDS:
        stage = evaluation(variant)
        assert evaluation(variant, seed=1).key != stage.key
        assert evaluation(variant, **{"data.synth.seed": 1}).key != stage.key
        assert evaluation(variant).key == stage.key
        files = {p.name for p in closure([plugins.path("method", variant)])}
        assert "features.py" in files  # its features' code is part of the evaluation's fingerprint
    assert evaluation("emg_log_power").key != evaluation("pose_features").key


def test_a_run_of_only_an_evaluation_stage_goes_through_every_part(make_results, tmp_path):
    from bench.run.slurm.submit import stage_levels
    results = make_results(tmp_path / "results")
    args = ["--suite", "bounds", "--runs-dir", results, *tiny_args()]
    out = cli("run", *args)
    assert "emg_log_power/seed-0: LP" in out.stdout
    recs = records(results)
    assert set(recs) == {f"{v}/seed-0" for v in BOUNDS}
    for variant in BOUNDS:
        rec = recs[f"{variant}/seed-0"]
        assert rec["status"] == "done" and [s["kind"] for s in rec["stages"]] == ["eval"]
        assert 0 <= rec["metrics"]["lp_id"] <= 1 and 0 <= rec["metrics"]["lp_unseen"] <= 1
        assert rec["metrics"]["zs_id"] is None
    assert recs["emg_log_power/seed-0"]["not_applicable"]["zs_id"] == "no pose-aligned EMG embedding"
    assert recs["pose_features/seed-0"]["not_applicable"]["zs_id"].startswith("pose input: ")
    rows, _ = suite_status(Store(results), "bounds")
    assert [(r.ident, r.status) for r in rows] == [(f"{v}/seed-0", "done") for v in sorted(BOUNDS)]
    # SLURM: no stage job to submit, only the run jobs that evaluate
    runs = planner.plan(suites.load("bounds"), overrides=TINY)
    assert stage_levels(runs, Store(tmp_path / "empty")) == []

    cli("run", *args, "--force")  # the same seed: the same numbers
    assert {k: r["metrics"] for k, r in records(results).items()} == {k: r["metrics"] for k, r in recs.items()}
    shown = cli("report", "--suite", "bounds", "--runs-dir", results).stdout
    assert "floor: EMG log-power + LR" in shown and "ceiling: pose features + LR" in shown
