"""Every method, baseline and ablation: how each is built, and a tiny run of each."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY, tiny_args
from test_cli import cli, records

from bench import suites
from bench.run import planner


def plan(suite="full", seeds=(0,), **overrides):
    return {r.variant.name: r for r in planner.plan(suites.load(suite), seeds=seeds, overrides={**TINY, **overrides})}


def keys(run):
    return {s.kind: s.key for s in run.stages}


def test_every_paper_method_and_ablation_is_in_the_suites():
    bounds = {"emg_log_power", "pose_features"}  # the floor and ceiling, in every suite
    assert set(suites.load("paper").names) == {"emg2pose", "emg_mae", "poset", "cpep", "pose_mae"} | bounds
    ablations = set(suites.load("ablations").names)
    assert {"cpep", "frozen_emg", "random_init", "avgpool", "joint"} <= ablations
    patches = {r.config["emg"]["patch"] for r in planner.plan(suites.load("ablations"), seeds=(0,))
               if r.variant.group == "patch_length" or r.variant.name == "cpep"}
    assert len(patches) >= 4
    assert set(suites.load("full").names) == set(suites.load("paper").names) | ablations
    assert suites.load("smoke").seeds == (0,) and suites.load("ablations").seeds == (0, 1, 2)


def test_ablations_change_only_what_they_ablate():
    runs = plan()
    cpep = keys(runs["cpep"])
    assert cpep.keys() == {"pose_mae", "emg_mae", "align", "eval"}
    # every CPEP variant of a seed shares the Pose-MAE; those with the same EMG patches share the EMG-MAE
    for name in ("frozen_emg", "random_init", "avgpool", "joint", "patch50", "patch100", "patch400"):
        k = keys(runs[name])
        assert k["pose_mae"] == cpep["pose_mae"]
        assert k["align"] != cpep["align"] and k["eval"] != cpep["eval"]
    for name in ("frozen_emg", "avgpool", "joint"):
        assert keys(runs[name])["emg_mae"] == cpep["emg_mae"]
    assert "emg_mae" not in keys(runs["random_init"])
    assert len({keys(runs[p])["emg_mae"] for p in ("patch50", "patch100", "patch400")} | {cpep["emg_mae"]}) == 4
    assert keys(runs["emg_mae"])["emg_mae"] == cpep["emg_mae"]
    assert keys(runs["pose_mae"])["pose_mae"] == cpep["pose_mae"]
    assert [s.kind for s in runs["emg2pose"].stages] == ["tds_regression", "eval"]
    assert [s.kind for s in runs["poset"].stages] == ["poset", "eval"]


def test_stage_keys_follow_the_config_that_determines_them():
    base = keys(plan()["cpep"])
    assert keys(plan(**{"align.lr": 1e-4})["cpep"])["pose_mae"] == base["pose_mae"]
    assert keys(plan(**{"align.lr": 1e-4})["cpep"])["align"] != base["align"]
    assert keys(plan(**{"mae.epochs": 3})["cpep"])["pose_mae"] != base["pose_mae"]
    assert keys(plan(**{"data.synth.difficulty": 0.9})["cpep"])["pose_mae"] != base["pose_mae"]
    assert keys(plan(**{"train.device": "cpu", "train.workers": 2, "data.in_memory_gb": 0.0})["cpep"]) == base
    for method in ("pose_mae", "emg_mae"):  # pooling does not change MAE training, but it changes the embedding
        pooled = keys(plan(**{"embedding.pooling": "mean"})[method])
        assert pooled[method] == keys(plan()[method])[method] and pooled["eval"] != keys(plan()[method])["eval"]
    assert keys(plan(seeds=(1,))["cpep"])["pose_mae"] != base["pose_mae"]


def test_selection_of_seeds_and_variants():
    runs = planner.plan(suites.load("ablations"), seeds=suites.parse_seeds("0-2,5"), variants=["cpep", "avgpool"])
    assert [(r.variant.name, r.seed) for r in runs] == [
        ("cpep", 0), ("cpep", 1), ("cpep", 2), ("cpep", 5), ("avgpool", 0), ("avgpool", 1), ("avgpool", 2),
        ("avgpool", 5)]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("full")
    cli("run", "--suite", "full", "--seeds", "0", "--runs-dir", results, *tiny_args())
    return results


def test_a_tiny_run_of_every_variant_finishes_with_its_metrics(full_run):
    recs = records(full_run)
    assert {name.split("/")[0] for name in recs} == set(suites.load("full").names)
    for name, rec in recs.items():
        assert rec["status"] == "done", (name, rec["error"])
        m = rec["metrics"]
        assert m["lp_id"] is not None and m["lp_unseen"] is not None
        if rec["method"] == "cpep":
            assert m["zs_id"] is not None and m["zs_unseen"] is not None
        else:
            assert m["zs_id"] is None and rec["not_applicable"]["zs_id"]


def test_shared_stages_are_computed_once(full_run):
    runs = planner.plan(suites.load("full"), seeds=(0,), overrides=TINY)
    stage_dirs = sorted(p.name for p in (full_run / "stages").iterdir())
    assert stage_dirs == sorted(s.name for s in planner.unique_stages(runs))
    assert sum(d.startswith("pose_mae-") for d in stage_dirs) == 1
    assert sum(d.startswith("emg_mae-") for d in stage_dirs) == 4  # patch 200 (shared), 50, 100, 400


def _model(results, run, kind):
    key = next(s["key"] for s in run["stages"] if s["kind"] == kind)
    return torch.load(results / "stages" / f"{kind}-{key}" / "model.pt")


def test_frozen_and_joint_ablations_freeze_and_train_what_they_say(full_run):
    recs = records(full_run)
    emg_mae = _model(full_run, recs["cpep/seed-0"], "emg_mae")
    pose_mae = _model(full_run, recs["cpep/seed-0"], "pose_mae")

    def aligned(name):
        state = _model(full_run, recs[f"{name}/seed-0"], "align")
        emg = {k[4:]: v for k, v in state.items() if k.startswith("emg.")}
        pose = {k[5:]: v for k, v in state.items() if k.startswith("pose.")}
        return emg, pose

    same = (lambda a, b: all(torch.equal(a[k], b[k]) for k in b))  # noqa: E731
    emg, pose = aligned("cpep")
    assert not same(emg, emg_mae) and same(pose, pose_mae)
    emg, pose = aligned("frozen_emg")
    assert same(emg, emg_mae) and same(pose, pose_mae)
    emg, pose = aligned("joint")
    assert not same(emg, emg_mae) and not same(pose, pose_mae)
    history = next(s for s in recs["cpep/seed-0"]["stages"] if s["kind"] == "align")["history"]
    assert history[0]["temperature"] == pytest.approx(0.02, abs=2e-3)


def test_records_carry_the_variant_config(full_run):
    recs = records(full_run)
    assert recs["avgpool/seed-0"]["config"]["embedding"]["pooling"] == "mean"
    assert recs["patch50/seed-0"]["config"]["emg"]["patch"] == 50
    assert recs["patch50/seed-0"]["group"] == "patch_length"
    assert recs["random_init/seed-0"]["config"]["align"]["emg_init"] == "random"
    assert json.dumps(recs["cpep/seed-0"]["config"])  # plain JSON, reloadable


def test_editing_a_vocabulary_file_makes_new_evaluations(tmp_path):
    from importlib import resources
    vocab = tmp_path / "mine.toml"
    text = resources.files("cpep.data.vocab").joinpath("synthetic-v1.toml").read_text()
    vocab.write_text(text)
    before = keys(plan(**{"data.vocab": str(vocab)})["cpep"])
    vocab.write_text(text.replace('Fist = ["Fist"]', 'Fist = ["Fist", "Spread"]'))
    after = keys(plan(**{"data.vocab": str(vocab)})["cpep"])
    assert after["align"] == before["align"] and after["eval"] != before["eval"]


def test_streamed_and_in_memory_data_train_the_same_weights(tiny_data, tiny_config):
    from bench import plugins
    from bench.methods.emg_mae import STEP
    from cpep.config import Data
    from cpep.data.emg2pose import open_data
    data = open_data(Data.of(tiny_config), tiny_data)
    device = torch.device("cpu")
    in_memory, _ = plugins.train(STEP, plugins.Context(tiny_config, data, 0, device, {}))
    tiny_config["data"]["in_memory_gb"] = 0.0
    streamed, _ = plugins.train(STEP, plugins.Context(tiny_config, data, 0, device, {}))
    assert all(torch.equal(in_memory[k], streamed[k]) for k in in_memory)


@pytest.mark.parametrize("text, message", [
    ('seeds = "0-2"\n[[variants]]\nname = "a"\nmethod = "cpep"\n', "seeds must be a list"),
    ('[[variants]]\nmethod = "cpep"\n', "needs a name"),
    ('[[variants]]\nname = "a"\nmethod = "nope"\n', "unknown method 'nope'"),
    ('[[variants]]\nname = "a"\nmethod = "cpep"\nset = { "mae.epochz" = 1 }\n', "unknown configuration key"),
    ("", "lists no variants"),
])
def test_a_malformed_suite_file_is_one_line_error(tmp_path, text, message):
    from cpep.errors import UserError
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        suites.load(str(path))
