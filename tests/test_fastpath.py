"""The training fast path: frozen pose embeddings computed once per alignment, torch.compile, and torch threads
sized to the CPUs the process is allotted (cgroup quota, affinity, SLURM), recorded with each stage."""

from __future__ import annotations

import functools
import os
import shutil

import pytest
import torch
from conftest import TINY, random_encoders

from bench import plugins
from bench.methods import cpep, emg_mae
from bench.run import runner
from bench.run.planner import plan
from bench.run.store import Store
from bench.suites import load as load_suite
from cpep.config import Data
from cpep.data.emg2pose import open_data
from cpep.errors import ConfigError
from cpep.nn import train
from cpep.nn.models import Encoder
from cpep.threads import available_cpus, cgroup_cpus, slurm_cpus, use_threads

CPU = torch.device("cpu")


@pytest.fixture
def keep_threads():
    """Tests that size torch's pool give the next test the pool it had."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ frozen pose embeddings, computed once

@pytest.fixture(scope="module")
def aligned_inputs(tiny_data):
    """Pose and EMG encoders to align: seeded random weights stand in for the MAE stages' outputs."""
    cfg = plugins.resolve(TINY)
    data = open_data(Data.of(cfg), tiny_data)
    torch.manual_seed(7)
    return data, random_encoders(cfg, data)


def pose_encoder_calls(monkeypatch) -> list[int]:
    """A list that grows by each batch's size whenever a pose encoder (20 input channels) runs."""
    calls, forward = [], Encoder.forward

    def counting(self, x):
        if self.channels == 20:
            calls.append(len(x))
        return forward(self, x)
    monkeypatch.setattr(Encoder, "forward", counting)
    return calls


def align(data, inputs, cache_pose: bool, checkpoint=None, on_epoch=None, device=CPU, **overrides):
    cfg = plugins.resolve(TINY, overrides)
    context = plugins.Context(cfg, data, 0, device, inputs, checkpoint, on_epoch)
    return plugins.train(cpep.ALIGN, context, functools.partial(cpep.build, cache_pose=cache_pose))


def assert_same_training(a, b):
    """Loss histories and final weights agree to 1e-6 (relative, losses) and 1e-6 (absolute, weights)."""
    (state_a, history_a), (state_b, history_b) = a, b
    assert [h["epoch"] for h in history_a] == [h["epoch"] for h in history_b]
    for key in ("loss", "temperature", "lr"):
        assert [h[key] for h in history_a] == pytest.approx([h[key] for h in history_b], rel=1e-6), key
    assert list(state_a) == list(state_b)
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key], rtol=0, atol=1e-6, msg=key)


def test_cached_pose_embeddings_train_the_same_weights_without_running_the_pose_encoder(aligned_inputs,
                                                                                         monkeypatch):
    data, inputs = aligned_inputs
    windows = len(data.selection("pretrain"))
    epochs, batch = 3, 32
    steps = windows // batch
    calls = pose_encoder_calls(monkeypatch)
    cached = align(data, inputs, cache_pose=True, **{"align.epochs": epochs})
    # Once over every window (the last, partial batch included), before the first epoch; never in a step.
    assert sum(calls) == windows and len(calls) == -(-windows // batch)
    calls.clear()
    direct = align(data, inputs, cache_pose=False, **{"align.epochs": epochs})
    assert calls == [batch] * (steps * epochs)
    assert_same_training(cached, direct)
    assert not torch.equal(cached[0]["emg.embed.weight"], inputs["emg_mae"]["embed.weight"])  # it trained
    for key, value in inputs["pose_mae"].items():
        assert torch.equal(cached[0][f"pose.{key}"], value)  # frozen


def test_joint_training_runs_the_pose_encoder_every_step(aligned_inputs, monkeypatch):
    data, inputs = aligned_inputs
    steps = len(data.selection("pretrain")) // 32
    calls = pose_encoder_calls(monkeypatch)
    state, _ = align(data, inputs, cache_pose=True, **{"align.train_pose": True, "align.epochs": 1})
    assert calls == [32] * steps
    assert not torch.equal(state["pose.embed.weight"], inputs["pose_mae"]["embed.weight"])


class Interrupted(Exception):
    pass


def test_alignment_with_cached_pose_embeddings_resumes_to_the_same_weights(aligned_inputs, tmp_path):
    data, inputs = aligned_inputs
    checkpoint = tmp_path / "checkpoint.pt"

    def stop_in_epoch_2(epoch, log):
        if epoch == 2:  # before the checkpoint of epoch 2 is written: resumes from epoch 1's
            raise Interrupted

    with pytest.raises(Interrupted):
        align(data, inputs, True, checkpoint, stop_in_epoch_2, **{"align.epochs": 3})
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["epoch"] == 1
    resumed = align(data, inputs, True, checkpoint, **{"align.epochs": 3})
    uninterrupted = align(data, inputs, True, **{"align.epochs": 3})
    assert resumed[1][0] == saved["history"][0]  # epoch 1 (its seconds too) from the checkpoint: resumed
    assert [h["loss"] for h in resumed[1]] == [h["loss"] for h in uninterrupted[1]]
    assert all(torch.equal(resumed[0][k], uninterrupted[0][k]) for k in uninterrupted[0])


def test_batches_say_which_windows_they_hold(aligned_inputs):
    data, _ = aligned_inputs
    windows = data.selection("pretrain").head(40)
    for in_memory in (1e9, 0.0):  # sliced from memory, then streamed from the files
        batches = train.Batches(windows, 16, CPU, seed=3, in_memory_bytes=in_memory)
        seen = []
        for batch in batches.epoch(0):
            for i, pose in zip(batch["index"].tolist(), batch["pose"]):
                assert torch.equal(pose, windows[i]["pose"])
            seen += batch["index"].tolist()
        assert sorted(seen) == list(range(40))


# ------------------------------------------------------------------ torch.compile

def missing_compiler() -> str | None:
    """Why torch.compile cannot build its CPU kernels here, or None."""
    if any(shutil.which(name) for name in (os.environ.get("CXX"), "g++", "clang++") if name):
        return None
    return "torch.compile builds its CPU kernels with a C++ compiler, and none is on the PATH"


@pytest.mark.skipif(missing_compiler() is not None, reason=str(missing_compiler()))
def test_compiled_alignment_keeps_plain_state_dict_keys_and_trains_like_eager(aligned_inputs, monkeypatch):
    data, inputs = aligned_inputs
    modes = []
    real = train.compile_forward
    monkeypatch.setattr(train, "compile_forward", lambda *a, **k: modes.append(real(*a, **k)) or modes[-1])
    compiled = align(data, inputs, True, **{"align.epochs": 2, "train.compile": True})
    assert modes == [False]  # compiled once, without CUDA graphs on the CPU
    eager = align(data, inputs, True, **{"align.epochs": 2})
    assert list(compiled[0]) == list(eager[0])  # no "_orig_mod." prefix
    # Fused kernels round differently: the same training to float32 noise, not bit for bit.
    assert [h["loss"] for h in compiled[1]] == pytest.approx([h["loss"] for h in eager[1]], rel=1e-4)
    for key in eager[0]:
        torch.testing.assert_close(compiled[0][key], eager[0][key], rtol=0, atol=1e-3, msg=key)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_cached_embeddings_and_cuda_graphs_train_like_the_plain_loop(aligned_inputs, monkeypatch):
    data, inputs = aligned_inputs
    gpu, epochs = torch.device("cuda"), {"align.epochs": 3}
    graphs = []
    real = train.compile_forward
    monkeypatch.setattr(train, "compile_forward", lambda *a, **k: graphs.append(real(*a, **k)) or graphs[-1])
    direct = align(data, inputs, False, device=gpu, **epochs)
    cached = align(data, inputs, True, device=gpu, **epochs)
    compiled = align(data, inputs, True, device=gpu, **epochs, **{"train.compile": True})
    assert graphs == [True]
    assert list(compiled[0]) == list(direct[0])
    # bf16 autocast: the same training to bf16 rounding, which CUDA kernels need not repeat bit for bit.
    losses = [h["loss"] for h in direct[1]]
    assert [h["loss"] for h in cached[1]] == pytest.approx(losses, rel=1e-2)
    assert [h["loss"] for h in compiled[1]] == pytest.approx(losses, rel=5e-2)
    for key in direct[0]:
        torch.testing.assert_close(cached[0][key], direct[0][key], rtol=0, atol=1e-2, msg=key)


class _RecordsCompile(torch.nn.Module):
    def compile(self, **kwargs):
        self.compiled_with = kwargs


@pytest.mark.parametrize("device, mode, graphs", [("cuda", "reduce-overhead", True), ("cpu", "default", False)])
def test_cuda_graphs_on_cuda_for_every_stage(device, mode, graphs):
    model = _RecordsCompile()
    assert train.compile_forward(model, torch.device(device)) is graphs
    assert model.compiled_with == {"mode": mode}


def mae(data, device=CPU, **overrides):
    cfg = plugins.resolve(TINY, {"mae.epochs": 2}, overrides)
    return plugins.train(emg_mae.STEP, plugins.Context(cfg, data, 0, device, {}))


def test_compiled_code_sees_full_batches_and_the_short_last_batch_runs_eagerly(aligned_inputs, monkeypatch):
    """An MAE stage keeps its last, shorter batch. Compiled with a backend that runs the captured graph as it is
    (so that only the routing can change the numbers), full batches go through the compiled code, the short one
    does not, and the weights equal the eager loop's bit for bit."""
    data, _ = aligned_inputs
    windows, batch = len(data.selection("pretrain")), TINY["mae.batch_size"]
    assert windows % batch, "the tiny data must leave a short last batch"
    compiled_batches, graphs = [], []

    def backend(gm, example_inputs):
        graphs.append(gm)

        def run(*args):
            compiled_batches.append([a.shape[0] for a in args if isinstance(a, torch.Tensor) and a.dim() == 3])
            return gm(*args)
        return run

    def compile_forward(model, device):
        model.compile(backend=backend)
        return False
    monkeypatch.setattr(train, "compile_forward", compile_forward)
    eager = mae(data)
    compiled = mae(data, **{"train.compile": True})
    full_steps = 2 * (windows // batch)
    assert len(compiled_batches) == full_steps, "one compiled call per full batch, none for the short ones"
    short = windows % batch
    assert all(batch in shapes and short not in shapes for shapes in compiled_batches), compiled_batches
    assert len(graphs) == 1, "the short batch made no second graph"
    assert [h["loss"] for h in compiled[1]] == [h["loss"] for h in eager[1]]
    assert list(compiled[0]) == list(eager[0])
    for key in eager[0]:
        assert torch.equal(compiled[0][key], eager[0][key]), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_mae_stages_train_with_cuda_graphs_like_the_plain_loop(aligned_inputs, monkeypatch):
    data, _ = aligned_inputs
    gpu = torch.device("cuda")
    graphs = []
    real = train.compile_forward
    monkeypatch.setattr(train, "compile_forward", lambda *a, **k: graphs.append(real(*a, **k)) or graphs[-1])
    eager = mae(data, gpu, **{"mae.epochs": 3})
    compiled = mae(data, gpu, **{"mae.epochs": 3, "train.compile": True})
    assert graphs == [True]
    assert list(compiled[0]) == list(eager[0])
    # Compiled code draws its masks from its own random stream: the same training in distribution, not bit for bit.
    assert [h["loss"] for h in compiled[1]] == pytest.approx([h["loss"] for h in eager[1]], rel=0.2)


def test_adamw_is_fused_on_cuda_only(monkeypatch):
    made = []
    real = torch.optim.AdamW
    monkeypatch.setattr(torch.optim, "AdamW", lambda *a, **k: made.append(k) or real(*a, **k))
    model = torch.nn.Linear(3, 1)

    class OneBatch:
        device = CPU

        def __len__(self):
            return 1

        def epoch(self, epoch):
            return iter([torch.ones(2, 3)])

    train.fit(model, lambda x: model(x).sum(), OneBatch(), train.Schedule(1, 2, 1e-3, 0.0))
    assert made[0]["fused"] is None  # on the CPU: the plain implementation
    if torch.cuda.is_available():
        model.cuda()
        OneBatch.device = torch.device("cuda")
        train.fit(model, lambda x: model(x.cuda()).sum(), OneBatch(), train.Schedule(1, 2, 1e-3, 0.0))
        assert made[1]["fused"] is True


# ------------------------------------------------------------------ threads from the allocation

def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("cpu_max, expected", [("max 100000", None), ("200000 100000", 2), ("150000 100000", 1),
                                               ("50000 100000", 1), ("800000 200000", 4)])
def test_cgroup_v2_quota(tmp_path, cpu_max, expected):
    write(tmp_path / "sys" / "cpu.max", cpu_max)
    proc = write(tmp_path / "proc-cgroup", "0::/\n")
    assert cgroup_cpus(tmp_path / "sys", proc) == expected


def test_cgroup_v2_tightest_quota_of_own_cgroup_and_those_above(tmp_path):
    root = tmp_path / "sys"
    write(root / "job" / "cpu.max", "300000 100000")
    write(root / "job" / "step" / "cpu.max", "max 100000")
    write(root / "other" / "cpu.max", "100000 100000")  # a sibling's quota is not this process's
    proc = write(tmp_path / "proc-cgroup", "0::/job/step\n")
    assert cgroup_cpus(root, proc) == 3
    write(root / "cpu.max", "200000 100000")
    assert cgroup_cpus(root, proc) == 2


@pytest.mark.parametrize("quota, period, expected", [("-1", "100000", None), ("300000", "100000", 3),
                                                     ("120000", "100000", 1)])
def test_cgroup_v1_quota(tmp_path, quota, period, expected):
    cpu = tmp_path / "sys" / "cpu,cpuacct" / "user"
    write(cpu / "cpu.cfs_quota_us", quota)
    write(cpu / "cpu.cfs_period_us", period)
    proc = write(tmp_path / "proc-cgroup", "4:memory:/user\n3:cpu,cpuacct:/user\n0::/\n")
    assert cgroup_cpus(tmp_path / "sys", proc) == expected


def test_no_cgroup_files_mean_no_quota(tmp_path):
    assert cgroup_cpus(tmp_path / "nothing", tmp_path / "no-proc-file") is None


@pytest.mark.parametrize("env, expected", [({}, None), ({"SLURM_CPUS_PER_TASK": "3"}, 3),
                                           ({"SLURM_CPUS_ON_NODE": "8"}, 8),
                                           ({"SLURM_CPUS_PER_TASK": "2", "SLURM_CPUS_ON_NODE": "8"}, 2),
                                           ({"SLURM_CPUS_PER_TASK": "", "SLURM_CPUS_ON_NODE": "x"}, None)])
def test_slurm_allocation(env, expected):
    assert slurm_cpus(env) == expected


def test_available_cpus_is_the_smallest_limit(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    proc = write(tmp_path / "proc-cgroup", "0::/\n")
    nothing = tmp_path / "nothing"
    assert available_cpus(nothing, proc, {}) == affinity
    assert available_cpus(nothing, proc, {"SLURM_CPUS_PER_TASK": "1"}) == 1
    assert available_cpus(nothing, proc, {"SLURM_CPUS_PER_TASK": str(affinity + 5)}) == affinity
    write(tmp_path / "sys" / "cpu.max", "100000 100000")
    assert available_cpus(tmp_path / "sys", proc, {}) == 1


def test_threads_follow_the_allocation_unless_set(keep_threads):
    assert use_threads(1) == 1 == torch.get_num_threads()
    assert use_threads(0) == available_cpus() == torch.get_num_threads()
    assert use_threads(3) == 3  # exactly that many, whatever the allocation
    with pytest.raises(ConfigError, match="train.threads must be >= 0"):
        plugins.resolve(TINY, {"train.threads": -1})


def test_stages_record_their_threads_and_neither_threads_nor_compile_change_a_stage(make_results, tmp_path,
                                                                                    keep_threads):
    def runs(**overrides):
        return plan(load_suite("smoke"), variants=["pose_mae"], overrides={**TINY, **overrides})

    keys = [[s.key for s in runs(**o)[0].stages] for o in ({}, {"train.threads": 1}, {"train.compile": True})]
    assert keys[0] == keys[1] == keys[2]
    for threads in (1, 0):
        store = Store(make_results(tmp_path / f"threads-{threads}"))
        run = runs(**{"train.threads": threads})[0]
        assert runner.complete(run, store)["status"] == "done"
        for stage in run.stages:  # the training stage and the evaluation
            device = store.stage_meta(stage)["environment"]
            assert device["threads"] == (threads or available_cpus())
            assert device["cpus_allotted"] == available_cpus()
