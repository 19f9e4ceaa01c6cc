"""Plug-ins added as one file each (tests/plugins), loud failures, and stage keys that follow the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_args
from test_cli import cli, records

from bench import plugins, suites
from bench.run import fingerprint
from cpep.errors import ConfigError

PLUGINS = Path(__file__).parent / "plugins"


def stage_key(record: dict, kind: str) -> str:
    return next(s["key"] for s in record["stages"] if s["kind"] == kind)


def test_a_method_an_objective_and_a_metric_from_a_folder_run_end_to_end(make_results, tmp_path):
    results = make_results(tmp_path / "results")
    cli("run", "--suite", PLUGINS / "suite.toml", "--runs-dir", results, *tiny_args())
    recs = records(results)
    envelope, one_way = recs["envelope/seed-0"], recs["cpep_one_way/seed-0"]
    assert envelope["status"] == one_way["status"] == "done"
    for rec in (envelope, one_way):
        for metric in ("lp_id", "lp_unseen", "centroid_id", "centroid_unseen"):
            assert 0.0 <= rec["metrics"][metric] <= 1.0, (rec["variant"], metric)
    assert envelope["metrics"]["zs_id"] is None
    assert envelope["not_applicable"]["zs_id"] == "no pose-aligned EMG embedding"
    assert one_way["metrics"]["zs_id"] is not None and one_way["metrics"]["zs_unseen"] is not None
    # the objective's learnable bias trained with the model
    state = torch.load(results / "stages" / f"align-{stage_key(one_way, 'align')}" / "model.pt")
    assert "logit_bias" in state and float(state["logit_bias"]) != 0.0
    report = cli("report", "--suite", PLUGINS / "suite.toml", "--runs-dir", results, "--out", tmp_path / "report")
    assert "centroid" in report.stdout


def test_the_objective_is_part_of_the_alignment_key():
    suite = suites.load(str(PLUGINS / "suite.toml"))
    from bench.run import planner
    one_way, = planner.plan(suite, variants=["cpep_one_way"])
    default, = planner.plan(suite, variants=["cpep_one_way"], overrides={"align.objective": "infonce"})
    keys = (lambda run: {s.kind: s.key for s in run.stages})  # noqa: E731
    assert keys(one_way)["pose_mae"] == keys(default)["pose_mae"]
    assert keys(one_way)["align"] != keys(default)["align"]


def test_a_broken_stage_leaves_its_traceback_on_disk_and_exit_1(make_results, tmp_path):
    results = make_results(tmp_path / "results")
    out = cli("run", "--suite", PLUGINS / "broken.toml", "--runs-dir", results, *tiny_args(), check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    recs = records(results)
    broken = recs["broken/seed-0"]
    assert broken["status"] == "failed" and broken["metrics"] is None
    assert broken["error"] == "broken: RuntimeError: deliberately broken at seed 0"
    log = Path(broken["error_log"])
    assert log.parent.name.startswith("broken-") and log.parent.parent == results.resolve() / "stages"
    text = log.read_text()
    assert text.startswith("Traceback") and "in _deep_inside" in text and "second line of the message" in text
    assert json.loads((log.parent / "failed.json").read_text())["log"] == str(log)
    assert str(log) in out.stdout.replace("\n", "")
    assert recs["envelope/seed-0"]["status"] == "done"  # the sweep went on after the failure

    fast = make_results(tmp_path / "fast")
    out = cli("run", "--suite", PLUGINS / "broken.toml", "--fail-fast", "--runs-dir", fast, *tiny_args(),
              check=False)
    flat = " ".join(out.stdout.split())
    assert out.returncode == 1 and "1 of 2 runs failed" in flat and "1 of 2 runs ended without a record" in flat
    assert set(records(fast)) == {"broken/seed-0"}


def test_embeddings_or_scores_that_are_not_finite_fail_the_evaluation(make_results, tmp_path):
    results = make_results(tmp_path / "results")
    out = cli("run", "--suite", PLUGINS / "nan.toml", "--runs-dir", results, *tiny_args(), check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    recs = records(results)
    embedding, metric = recs["nan_embedding/seed-0"], recs["nan_metric/seed-0"]
    found = re.fullmatch(r"eval: ValueError: lp embeddings of id_train are not finite \((\d+) of (\d+) values\)",
                         embedding["error"])
    assert found and int(found[2]) == 16 * int(found[1]) > 0, embedding["error"]  # one of 16 channels per window
    assert metric["error"] == "eval: ValueError: metric nan_score gave nan_score_id = nan"
    for rec in (embedding, metric):
        assert rec["status"] == "failed" and rec["metrics"] is None
        log = Path(rec["error_log"])
        assert log.parent.name == f"eval-{stage_key(rec, 'eval')}" and log.read_text().startswith("Traceback")
        assert not (log.parent / "meta.json").exists()


def test_a_code_change_recomputes_the_stage_and_reuse_stale_marks_what_it_reuses(make_results, tmp_path):
    folder = tmp_path / "plugins"
    shutil.copytree(PLUGINS, folder)
    method = folder / "methods" / "envelope.py"
    results = make_results(tmp_path / "results")
    args = ["run", "--suite", folder / "broken.toml", "--variants", "envelope", "--runs-dir", results,
            *tiny_args()]
    cli(*args)
    first = records(results)["envelope/seed-0"]
    old_key = stage_key(first, "envelope")

    method.write_text(method.read_text().replace('"""A method added', '"""(edited) A method added') + "# note\n")
    assert "1 already done, 0 to do" in cli(*args).stdout  # comments and docstrings are not code

    method.write_text(method.read_text().replace("feats.std(0)", "2 * feats.std(0)"))
    out = cli(*args, "--reuse-stale")
    assert "1 reusing stages of older code" in out.stdout
    reused = records(results)["envelope/seed-0"]
    assert reused["stale"] is True and stage_key(reused, "envelope") == old_key
    assert all(s["stale"] for s in reused["stages"]) and reused["metrics"] == first["metrics"]

    cli(*args)
    fresh = records(results)["envelope/seed-0"]
    assert fresh["stale"] is False and stage_key(fresh, "envelope") != old_key
    old = torch.load(results / "stages" / f"envelope-{old_key}" / "model.pt")
    new = torch.load(results / "stages" / f"envelope-{stage_key(fresh, 'envelope')}" / "model.pt")
    assert torch.allclose(new["std"], 2 * old["std"])
    meta = json.loads((results / "stages" / f"envelope-{stage_key(fresh, 'envelope')}" / "meta.json").read_text())
    assert meta["code"] != json.loads((results / "stages" / f"envelope-{old_key}" / "meta.json").read_text())["code"]
    assert meta["git"]["commit"]


def test_fingerprint_follows_code_through_imports_and_ignores_comments(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = tmp_path / "a" / "m.py", tmp_path / "b" / "m.py"
    a.write_text("from cpep import errors\n\ndef f():\n    return 1\n")
    b.write_text('"""Doc."""\n# comment\nfrom cpep import errors\n\n\ndef f():\n    """Doc."""\n    return 1\n')
    assert fingerprint.fingerprint([a]) == fingerprint.fingerprint([b])
    assert str(fingerprint.ROOT / "cpep" / "errors.py") in map(str, fingerprint.closure([a]))
    b.write_text("from cpep import errors\n\ndef f():\n    return 2\n")
    assert fingerprint.fingerprint([a]) != fingerprint.fingerprint([b])


def test_a_plugin_name_defined_twice_or_a_file_without_its_class_is_refused(tmp_path, monkeypatch):
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "cpep.py").write_text("")
    monkeypatch.setenv(plugins.ENV, str(tmp_path))
    with pytest.raises(ConfigError, match="method 'cpep' is defined twice"):
        plugins.names("method")
    (tmp_path / "methods" / "cpep.py").rename(tmp_path / "methods" / "empty.py")
    with pytest.raises(Exception, match="defines class Method"):
        plugins.get("method", "empty")


def test_suites_include_others_and_refuse_cycles(tmp_path):
    full = suites.load("full")
    assert [v.name for v in full.variants] == list(dict.fromkeys(suites.load("paper").names +
                                                                   suites.load("ablations").names))
    assert full.overrides["mae.epochs"] == 100
    (tmp_path / "a.toml").write_text(f'include = ["{tmp_path / "b.toml"}"]\n')
    (tmp_path / "b.toml").write_text(f'include = ["{tmp_path / "a.toml"}"]\n')
    with pytest.raises(ConfigError, match="includes itself"):
        suites.load(str(tmp_path / "a.toml"))


@pytest.mark.parametrize("command", [["--help"], ["suites"], ["status", "--suite", "smoke"],
                                     ["report", "--suite", "smoke"]])
def test_commands_that_do_not_train_never_import_torch(command, tmp_path):
    code = ("import sys\nfrom bench.cli import main\nsys.argv = ['cpep-bench', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code, *command, *(["--runs-dir", str(tmp_path)]
                                                                    if command[0] != "--help" and command[0] != "suites" else [])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
