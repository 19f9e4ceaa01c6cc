"""SLURM profiles that pack stages into one job, give each stage kind its own resources, or ask for what the
cluster cannot give; jobs that can never start, and a setup that fails. Against the real one-node cluster
(slurm/cluster.sh), except the parsing of what SLURM says."""

from __future__ import annotations

import copy
import io
import re
import subprocess
from pathlib import Path

import pytest
from conftest import TINY, tiny_args
from rich.console import Console
from test_cli import CLI, assert_one_line_error, cli, records
from test_executors import assert_same_weights, outcome, weights
from test_slurm import SLURM, cluster, cluster_up, jobs_of, logs_of  # noqa: F401  (fixtures)

from bench import plugins, suites
from bench.cli import selection
from bench.run import planner
from bench.run import sweep as sweeps
from bench.run.slurm import submit
from bench.run.slurm.cluster import gpus_of, minutes, never_starts
from bench.run.slurm.profile import Profile, load_profile
from bench.run.slurm.watch import SETUP_FAILED
from bench.run.status import suite_status
from bench.run.store import Store
from cpep.errors import UserError

LOCAL = 'partition = "debug"\nmem_gb = 4\ntimeout_min = 60\n'
WAIT_MIN = 30


def profile_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


def run_waiting(args: list, profile: Path, results: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([*CLI, *map(str, args), "--executor", "slurm", "--profile", str(profile), "--wait",
                          "--wait-timeout", str(WAIT_MIN), "--runs-dir", str(results)],
                         capture_output=True, text=True, timeout=WAIT_MIN * 60 + 600)
    assert "timed out" not in out.stdout, f"the jobs did not end within {WAIT_MIN} min:\n{out.stdout}"
    return out


@pytest.mark.slurm
def test_two_stages_packed_in_one_job_compute_what_each_computes_alone(cluster, make_results, tmp_path):
    profile = profile_file(tmp_path, LOCAL + "stages_per_gpu = 2\n[sbatch]\nexclusive = true\n")
    args = ["run", "--suite", "smoke", "--variants", "cpep", *tiny_args()]
    packed, alone = make_results(tmp_path / "packed"), make_results(tmp_path / "alone")
    out = run_waiting(args, profile, packed)
    assert out.returncode == 0, out.stdout + out.stderr
    cli(*args, "--runs-dir", alone)

    first = [j for j in jobs_of(packed, "smoke") if j["level"] == 0]
    assert sorted(j["what"].split("-")[0] for j in first) == ["emg_mae", "pose_mae"]
    (job,) = {j["job_id"] for j in first}  # one job holds both
    (log,) = logs_of(packed, "smoke").glob(f"{job}_*log.out")
    assert "pose_mae epoch 2/2" in log.read_text() and "emg_mae epoch 2/2" in log.read_text()
    assert outcome(packed) == outcome(alone)
    assert_same_weights(weights(packed), weights(alone))


@pytest.mark.slurm
def test_each_stage_kind_gets_the_resources_its_profile_table_gives(cluster, make_results, tmp_path):
    profile = profile_file(tmp_path, LOCAL + "cpus_per_task = 2\n[kinds.eval]\ncpus_per_task = 1\nmem_gb = 2\n")
    results = make_results(tmp_path / "results")
    cli("run", "--suite", "smoke", "--variants", "cpep,emg_log_power", *tiny_args(), "--set", "mae.epochs=1000",
        "--executor", "slurm", "--profile", profile, "--runs-dir", results)
    scripts = {}
    for job in jobs_of(results, "smoke"):
        text = (logs_of(results, "smoke") / f"{job['job_id'].split('_')[0]}_submission.sh").read_text()
        scripts[job["what"].split("-")[0]] = re.findall(r"#SBATCH --(cpus-per-task|mem)=(\S+)", text)
    assert set(scripts) == {"pose_mae", "emg_mae", "align", "run"}
    for kind in ("pose_mae", "emg_mae", "align"):
        assert sorted(scripts[kind]) == [("cpus-per-task", "2"), ("mem", "4GB")], kind
    assert sorted(scripts["run"]) == [("cpus-per-task", "1"), ("mem", "2GB")]  # run jobs evaluate


def test_stages_of_a_kind_kept_off_the_gpus_are_planned_at_their_precision(tmp_path):
    executor = copy.copy(plugins.get("executor", "slurm"))
    executor.profile = load_profile(str(profile_file(tmp_path, "gpus_per_task = 1\n[kinds.eval]\ngpus_per_task = 0\n")))
    sets = [f"{k}={v}" for k, v in TINY.items()]
    (run,) = selection("smoke", "synthetic", None, None, "cpep", sets, None, executor)
    assert {s.kind: s.precision for s in run.stages} == {"pose_mae": "bf16", "emg_mae": "bf16", "align": "bf16",
                                                         "eval": "float32"}


@pytest.mark.slurm
@pytest.mark.parametrize("text, complaint", [
    ("cpus_per_task = 64\n", "SLURM profile mine: cpus_per_task = 64, but partition debug offers at most, on its "
                             "largest node, 2 CPUs: its jobs could never start"),
    ("[kinds.eval]\nmem_gb = 100000\n", "SLURM profile mine [kinds.eval]: mem_gb = 100000, but partition debug"),
    ("gpus_per_task = 1\n", "gpus_per_task = 1, but partition debug offers at most, on its largest node, 0 GPUs"),
    ('partition = "no-such-partition"\n', "partition 'no-such-partition' does not exist (partitions: debug"),
    ("[kinds.allign]\ncpus_per_task = 1\n", "[kinds.allign] is no stage kind (kinds: align, emg_mae, eval"),
])
def test_a_profile_the_cluster_cannot_satisfy_is_refused_before_submitting(cluster, tmp_path, text, complaint):
    profile = profile_file(tmp_path, text)
    result = cli("run", "--suite", "smoke", "--executor", "slurm", "--profile", profile, "--runs-dir",
                 tmp_path / "runs", check=False)
    assert_one_line_error(result, complaint)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slurm
def test_waiting_stops_at_a_job_slurm_says_can_never_start(cluster, make_results, tmp_path):
    store = Store(make_results(tmp_path / "results"))
    runs = planner.plan(suites.load("smoke"), variants=["emg_log_power"], overrides=TINY)
    sweeps.write(store, runs, runs, "slurm", None)
    # Past the refusal `run` makes: as a profile made before the cluster shrank would.
    too_big = Profile("too-big", {"slurm_partition": "debug", "cpus_per_task": 64, "timeout_min": 10})
    with pytest.raises(UserError, match=r"SLURM job \d+(_0)? \(run\) can never start: PartitionConfig; stop the sweep "
                                        r"with `cpep-bench cancel --suite smoke"):
        submit.execute(runs, store, too_big, Console(file=io.StringIO()), wait=True, timeout_min=WAIT_MIN)
    (row,), _ = suite_status(store, "smoke")
    assert (row.status, row.detail) == ("blocked", f"SLURM job {row.job.split()[0]} can never start: PartitionConfig")


@pytest.mark.slurm
def test_a_failing_setup_line_says_so_and_where_its_output_went(cluster, make_results, tmp_path):
    profile = profile_file(tmp_path, LOCAL + 'setup = ["echo preparing", "false", "echo never"]\n')
    results = make_results(tmp_path / "results")
    out = run_waiting(["run", "--suite", "smoke", "--variants", "emg_log_power", *tiny_args()], profile, results)
    assert out.returncode == 1, out.stdout + out.stderr
    line = re.search(r"emg_log_power/seed-0: interrupted the profile's setup failed \(exit 1\) at: false in SLURM "
                     r"job (\S+); its output is in (\S+) and (\S+)\n", out.stdout)
    assert line, out.stdout
    assert "preparing" in Path(line.group(2)).read_text() and "never" not in Path(line.group(2)).read_text()
    assert SETUP_FAILED in Path(line.group(3)).read_text()
    assert "1 of 1 runs ended without a record, for the reasons above" in out.stdout
    assert "error.log" not in out.stdout and records(results) == {}
    (row,), _ = suite_status(Store(results), "smoke")
    assert row.status == "interrupted" and row.detail.startswith("the profile's setup failed (exit 1) at: false")


def test_what_slurm_says_is_read_as_it_means():
    assert minutes("UNLIMITED") == float("inf") and minutes("30") == 30 and minutes("1:30:00") == 90
    assert minutes("2-00:00:00") == 2880 and minutes("1-12") == 2160 and minutes("5:30") == 5.5
    assert gpus_of("gpu:a100:4(S:0-1),gpu:2") == 6 and gpus_of("(null)") == 0 and gpus_of("gpu:1,shard:8") == 1
    assert never_starts("PartitionConfig") and never_starts("InvalidAccount")
    assert never_starts("ReqNodeNotAvail, UnavailableNodes:") and not never_starts("ReqNodeNotAvail, UnavailableNodes:n1")
    assert not never_starts("Resources") and not never_starts("Dependency") and not never_starts("JobHeldUser")


def test_a_profile_with_a_wrong_kind_table_or_packing_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"\[kinds.eval\]: unknown key\(s\) setup"):
        load_profile(str(profile_file(tmp_path, '[kinds.eval]\nsetup = ["x"]\n')))
    with pytest.raises(UserError, match="stages_per_gpu = 0 must be a whole number, 1 or more"):
        load_profile(str(profile_file(tmp_path, "stages_per_gpu = 0\n")))
    packed = load_profile(str(profile_file(tmp_path, "stages_per_gpu = 3\ncpus_per_task = 4\n[sbatch]\nrequeue = "
                                                     "true\n[kinds.eval]\ncpus_per_task = 1\n[kinds.eval.sbatch]\n"
                                                     "exclusive = true\n")))
    assert packed.stages_per_gpu == 3 and packed.for_kind("align")["cpus_per_task"] == 4
    assert packed.for_kind("eval")["cpus_per_task"] == 1
    assert packed.for_kind("eval")["slurm_additional_parameters"] == {"requeue": True, "exclusive": True}


def test_setup_lines_stop_at_the_first_that_fails_and_say_which():
    def shell(lines):
        script = "\n".join([*submit.guarded_setup(lines), "echo the job"])
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)

    failed = shell(["echo preparing", "test -e /no/such/file", "echo never"])
    assert failed.returncode == 1 and failed.stdout == "preparing\n"
    assert failed.stderr == f"{SETUP_FAILED} (exit 1) at: test -e /no/such/file\n"
    fine = shell(["export X=1", "echo $X"])
    assert (fine.returncode, fine.stdout, fine.stderr) == (0, "1\nthe job\n", "")
    assert shell(["false"]).returncode == 1 and shell(["exit 3"]).returncode == 3
