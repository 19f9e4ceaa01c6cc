"""The command line end to end: records, determinism, resuming, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_args

from bench import plugins

CLI = [sys.executable, "-c", "from bench.cli import main; main()"]


def cli(*args, check=True):
    result = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=1800)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def records(results):
    return {p.parent.name + "/" + p.stem: json.loads(p.read_text()) for p in sorted(results.glob("runs/**/seed-*.json"))}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    results = tmp_path_factory.mktemp("smoke")
    out = cli("run", "--suite", "smoke", "--runs-dir", results, *tiny_args())
    return results, out


def test_run_writes_one_complete_record_per_run(smoke):
    results, out = smoke
    recs = records(results)
    assert set(recs) == {"cpep/seed-0", "pose_mae/seed-0", "emg_log_power/seed-0", "pose_features/seed-0"}
    cpep = recs["cpep/seed-0"]
    assert cpep["status"] == "done" and cpep["error"] is None
    assert set(cpep["metrics"]) == {"lp_id", "lp_unseen", "zs_id", "zs_unseen"}
    assert all(0.0 <= v <= 1.0 for v in cpep["metrics"].values())
    assert cpep["config"]["encoder"]["width"] == 32 and cpep["seed"] == 0
    assert [s["kind"] for s in cpep["stages"]] == ["pose_mae", "emg_mae", "align", "eval"]
    align = cpep["stages"][2]
    assert len(align["history"]) == 2 and {"loss", "temperature", "lr"} <= set(align["history"][0])
    prov = cpep["provenance"]
    assert prov["versions"]["torch"] in torch.__version__
    assert prov["device"] == "cpu" and prov["precision"] == "float32" and prov["git"]["commit"]
    pose = recs["pose_mae/seed-0"]
    assert pose["metrics"]["zs_id"] is None and "pose input" in pose["not_applicable"]["zs_id"]
    assert "cpep/seed-0: LP" in out.stdout


def test_report_prints_the_table(smoke):
    results, _ = smoke
    out = cli("report", "--suite", "smoke", "--runs-dir", results)
    assert "CPEP" in out.stdout and "Pose-MAE" in out.stdout


def test_same_seed_gives_identical_metrics_and_weights(smoke, tmp_path):
    results, _ = smoke
    cli("run", "--suite", "smoke", "--runs-dir", tmp_path, *tiny_args())
    first, second = records(results), records(tmp_path)
    for run in first:
        assert first[run]["metrics"] == second[run]["metrics"]
        assert first[run]["run_key"] == second[run]["run_key"]
    align = next(s for s in first["cpep/seed-0"]["stages"] if s["kind"] == "align")
    a = torch.load(results / "stages" / f"align-{align['key']}" / "model.pt")
    b = torch.load(tmp_path / "stages" / f"align-{align['key']}" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_another_seed_gives_other_weights(smoke, tmp_path):
    results, _ = smoke
    cli("run", "--suite", "smoke", "--variants", "pose_mae", "--seeds", "1", "--runs-dir", tmp_path, *tiny_args())
    key = lambda r: records(r)[f"pose_mae/seed-{0 if r == results else 1}"]["stages"][0]["key"]  # noqa: E731
    a = torch.load(results / "stages" / f"pose_mae-{key(results)}" / "model.pt")
    b = torch.load(tmp_path / "stages" / f"pose_mae-{key(tmp_path)}" / "model.pt")
    assert not torch.equal(a["embed.weight"], b["embed.weight"])


def test_rerun_skips_finished_runs_and_force_redoes_them(tmp_path):
    args = ["run", "--suite", "smoke", "--variants", "pose_mae", "--runs-dir", tmp_path, *tiny_args()]
    cli(*args)
    rec = records(tmp_path)["pose_mae/seed-0"]
    meta = tmp_path / "stages" / f"pose_mae-{rec['stages'][0]['key']}" / "meta.json"
    finished = json.loads(meta.read_text())["finished"]
    again = cli(*args)
    assert "1 already done, 0 to do" in again.stdout
    assert json.loads(meta.read_text())["finished"] == finished
    meta.write_text(meta.read_text().replace(finished, "earlier"))
    cli(*args, "--force")
    assert json.loads(meta.read_text())["finished"] != "earlier"
    assert records(tmp_path)["pose_mae/seed-0"]["metrics"] == rec["metrics"]


def assert_one_line_error(result, text):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert text in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, text", [
    (["run", "--suite", "nope"], "unknown suite 'nope'"),
    (["run", "--suite", "smoke", "--set", "mae.epoch=3"], "unknown configuration key 'mae.epoch'"),
    (["run", "--suite", "smoke", "--set", "mae.epochs=many"], "mae.epochs takes a whole number"),
    (["run", "--suite", "smoke", "--variants", "cpep,nope"], "has no variant 'nope'"),
    (["run", "--suite", "smoke", "--seeds", "3-1"], "--seeds takes a list"),
    (["run", "--suite", "smoke", "--data", "emg2pose"], "needs its location: --data-root"),
    (["run", "--suite", "smoke", "--executor", "cloud"], "unknown executor 'cloud'"),
    (["run", "--suite", "smoke", "--device", "gpu"], "train.device must be auto, cpu, cuda or cuda:N"),
    (["run", "--suite", "smoke", "--set", "mae.decoder_width=48", "--set", "mae.decoder_heads=5"],
     "mae.decoder_width (48) must be even and a multiple of mae.decoder_heads (5)"),
    (["run", "--suite", "paper", "--set", "tds.width=40"], "tds.width (40) must be a positive multiple of 16"),
    (["run", "--suite", "paper", "--variants", "emg2pose", "--set", "data.window=1600"],
     "longer than the TDS featurizer's receptive field (1790 samples)"),
    (["run", "--suite", "smoke", "--set", "align.objective=nope"], "unknown objective 'nope'"),
    (["run", "--suite", "smoke", "--set", 'eval.metrics=["nope"]'], "unknown metric 'nope'"),
    (["report", "--suite", "nope"], "unknown suite 'nope'"),
])
def test_bad_arguments_get_one_line_and_exit_2(tmp_path, args, text):
    result = cli(*args, "--runs-dir", tmp_path / "results", check=False)
    assert_one_line_error(result, text)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("suite, assignment, text", [
    ("smoke", "encoder.heads=0", "encoder.heads must be > 0, not 0"),
    ("smoke", "encoder.depth=0", "encoder.depth must be > 0, not 0"),
    ("smoke", "encoder.mlp_ratio=0", "encoder.mlp_ratio must be > 0, not 0.0"),
    ("smoke", "data.pose_decimation=0", "data.pose_decimation must be > 0, not 0"),
    ("smoke", "data.window=0", "data.window must be > 0, not 0"),
    ("smoke", "data.stride=-5", "data.stride must be > 0, not -5"),
    ("smoke", "data.in_memory_gb=-1", "data.in_memory_gb must be >= 0, not -1.0"),
    ("smoke", "emg.rotation_augment=-1", "emg.rotation_augment must be >= 0, not -1"),
    ("smoke", "mae.batch_size=1", "mae.batch_size must be >= 2, not 1"),
    ("smoke", "mae.lr=nan", "mae.lr must be a finite number, not nan"),
    ("smoke", "mae.weight_decay=-0.1", "mae.weight_decay must be >= 0, not -0.1"),
    ("smoke", "supervised.warmup_epochs=-1", "supervised.warmup_epochs must be >= 0, not -1.0"),
    ("smoke", "train.checkpoint_every=0", "train.checkpoint_every must be > 0, not 0"),
    ("smoke", "train.workers=-1", "train.workers must be >= 0, not -1"),
    ("smoke", "zero_shot.k=0", "zero_shot.k must be > 0, <= 16384, not 0"),
    ("smoke", "linear_probe.max_iter=0", "linear_probe.max_iter must be > 0, not 0"),
    ("smoke", "align.lr=-1", "align.lr must be > 0, not -1.0"),
    ("smoke", "align.weight_decay=-1", "align.weight_decay must be >= 0, not -1.0"),
    ("smoke", "align.warmup_epochs=-1", "align.warmup_epochs must be >= 0, not -1.0"),
    ("paper", "tds.decoder_hidden=0", "tds.decoder_hidden must be > 0, not 0"),
])
def test_values_out_of_range_are_refused_before_anything_is_written(tmp_path, suite, assignment, text):
    result = cli("run", "--suite", suite, "--runs-dir", tmp_path / "results", "--set", assignment, check=False)
    assert_one_line_error(result, text)
    assert not (tmp_path / "results").exists()


def test_every_numeric_key_has_a_range():
    unbounded = [f"{name}.{f.name}" for name, cls in plugins.sections().items() for f in cls.params()
                 if isinstance(cls.defaults()[f.name], (int, float)) and not isinstance(cls.defaults()[f.name], bool)
                 and not (f.metadata["bound"] or f.metadata["choices"])]
    assert len(plugins.sections()) > 10 and not unbounded


def test_a_data_root_that_is_not_emg2pose_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = cli("run", "--suite", "smoke", "--data", "emg2pose", "--data-root", tmp_path,
                 "--runs-dir", tmp_path / "results", check=False)
    assert_one_line_error(result, "is not an emg2pose dataset: it has no metadata.csv")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("dtype, text", [
    (np.dtype([("time", "<f8"), ("joint_angles", "<f8", (20,))]), "timeseries has no field 'emg'"),
    (np.dtype([("time", "<f8"), ("joint_angles", "<f8", (20,)), ("emg", "<f4", (12,))]), "emg has 12 channels"),
])
def test_a_broken_recording_is_refused_before_anything_is_written(tmp_path, tiny_data, dtype, text):
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    victim = sorted(root.glob("*recording-3_right.hdf5"))[0]
    with h5py.File(victim, "w") as f:
        f.create_group("emg2pose").create_dataset("timeseries", data=np.zeros(4000, dtype=dtype))
    result = cli("run", "--suite", "smoke", "--data", "emg2pose", "--data-root", root, "--set", "data.vocab=synthetic-v1",
                 "--runs-dir", tmp_path / "results", *tiny_args(), check=False)
    assert_one_line_error(result, text)
    assert_nothing_but_scan_verdicts(tmp_path / "results")


def assert_nothing_but_scan_verdicts(results):
    """A refused run leaves only the scan verdicts of the files it read (cache/windows-*), so that fixing one file
    of a large dataset does not make the next run read every other file again: no record, stage or statistics."""
    written = [p.relative_to(results) for p in results.rglob("*") if p.is_file()]
    assert all(p.parts[0] == "cache" and p.name.startswith("windows-") for p in written), written


def test_a_refused_run_writes_no_result_and_no_statistics(tmp_path, tiny_data):
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    meta = pd.read_csv(root / "metadata.csv")
    # A test user's recording: read by the probes, never for the normalisation statistics.
    victim = root / (meta[meta["held_out_user"] & (meta["stage"] == "Fist")]["filename"].iloc[0] + ".hdf5")
    victim.write_bytes(b"not an HDF5 file")
    result = cli("run", "--suite", "smoke", "--data", "emg2pose", "--data-root", root, "--set", "data.vocab=synthetic-v1",
                 "--runs-dir", tmp_path / "results", *tiny_args(), check=False)
    assert_one_line_error(result, "not a readable HDF5 file")
    assert_nothing_but_scan_verdicts(tmp_path / "results")


def test_data_synth_and_check(tmp_path):
    out = tmp_path / "synthetic"
    cli("data", "synth", "--out", out, "--users", 3, "--test-users", 1, "--stage-seconds", 4)
    # 3 users x 2 sessions x 12 stages (stage set v2, the default)
    assert (out / "metadata.csv").is_file() and len(list(out.glob("*.hdf5"))) == 3 * 2 * 12
    check = cli("data", "check", out, "--runs-dir", tmp_path / "results")
    assert "ok (synthetic-v2)" in check.stdout and "pre-training" in check.stdout
    again = cli("data", "synth", "--out", out, check=False)
    assert_one_line_error(again, "exists and is not an empty directory")
    onto_file = cli("data", "synth", "--out", out / "metadata.csv", check=False)
    assert_one_line_error(onto_file, "exists and is not an empty directory")


def test_every_command_has_help():
    for command in (["--help"], ["run", "--help"], ["report", "--help"], ["evaluate", "--help"], ["suites", "--help"],
                    ["data", "synth", "--help"], ["data", "check", "--help"], ["perf", "--help"]):
        out = cli(*command)
        assert "Usage" in out.stdout and len(out.stdout) > 200


def test_suites_lists_every_suite_with_its_work():
    out = cli("suites")
    for name in ("smoke", "paper", "ablations", "full"):
        assert name in out.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_it_is_refused(tmp_path):
    result = cli("run", "--suite", "smoke", "--device", "cuda", "--runs-dir", tmp_path, check=False)
    assert_one_line_error(result, "CUDA is not available here")
    assert not tmp_path.joinpath("runs").exists()


def test_results_get_the_permissions_of_any_new_file(smoke):
    """Not the private mode of temporary files: a lab shares its runs directory."""
    from cpep.files import current_umask
    results, _ = smoke
    mask = current_umask()
    for path in (next(results.glob("runs/**/seed-*.json")), next(results.glob("stages/*/model.pt"))):
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path
    assert next(results.glob("data/synthetic-*")).stat().st_mode & 0o777 == 0o777 & ~mask
