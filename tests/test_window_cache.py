"""The packed window cache and the bounded set of open recordings: what training reads equals what the files hold."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from cpep.data import cache as window_cache
from cpep.data.emg2pose import Emg2PoseData
from cpep.data.gestures import load_vocab
from cpep.data.recordings import OPEN_FILES
from cpep.data.windows import WindowSpec
from cpep.nn.train import Batches

SPEC = WindowSpec(window=2000, stride=1000, pose_decimation=10)
VOCAB = load_vocab("synthetic-v1")
CPU = torch.device("cpu")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def packed_dirs(cache):
    return sorted(p for p in (cache / "packed").iterdir() if p.is_dir() and not p.name.startswith("."))


def direct(windows):
    """Every window read from its HDF5 file, stacked."""
    items = [windows[i] for i in range(len(windows))]
    return {name: torch.stack([item[name] for item in items]) for name in items[0]}


@pytest.fixture
def copy(tmp_path, tiny_data):
    """A copy of the tiny dataset whose files a test may touch, and a cache directory."""
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    return root, tmp_path / "cache"


@pytest.mark.parametrize("in_memory_bytes", [4e9, 0.0])
def test_batches_from_the_cache_are_the_windows_read_from_the_files(copy, in_memory_bytes):
    root, cache = copy
    windows = Emg2PoseData(root, VOCAB, SPEC, cache).selection("id_train")
    expected = direct(windows)
    batches = Batches(windows, 16, CPU, seed=0, in_memory_bytes=in_memory_bytes)
    assert (batches.tensors is None) == (in_memory_bytes == 0)
    got = list(batches.in_order())
    got = {name: torch.cat([b[name] for b in got]) for name in got[0]}
    assert got["emg"].dtype == torch.float32 and got["emg"].shape == expected["emg"].shape
    assert torch.equal(got["emg"], expected["emg"].half().float())  # stored as float16, nothing else changes
    assert not torch.equal(got["emg"], expected["emg"])
    assert torch.equal(got["pose"], expected["pose"]) and torch.equal(got["label"], expected["label"])
    order = next(Batches(windows, 16, CPU, seed=5, in_memory_bytes=in_memory_bytes).epoch(2))
    first = torch.randperm(len(windows), generator=torch.Generator().manual_seed(5 * 100_003 + 2))[:16]
    assert torch.equal(order["pose"], expected["pose"][first]) and torch.equal(order["label"], expected["label"][first])


def test_the_cache_is_written_once_and_reused(copy, monkeypatch):
    root, cache = copy
    first = Emg2PoseData(root, VOCAB, SPEC, cache).selection("pretrain").packed()
    [written] = packed_dirs(cache)
    files = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in written.iterdir()}
    assert set(files) == {"emg.npy", "pose.npy", "index.npz"} and isinstance(first.emg, np.memmap)

    def refuse(*args):
        raise AssertionError("the window cache was written again")
    monkeypatch.setattr(window_cache, "_write", refuse)
    again = Emg2PoseData(root, VOCAB, SPEC, cache).selection("pretrain").packed()
    assert packed_dirs(cache) == [written]
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in written.iterdir()} == files
    assert np.array_equal(again.emg, first.emg) and np.array_equal(again.pose, first.pose)


@pytest.mark.parametrize("in_memory_bytes, workers", [(4e9, 0), (0.0, 0), (0.0, 1)])
def test_a_part_of_a_selection_reads_the_selections_cache(copy, in_memory_bytes, workers):
    """The data fraction's windows: batches equal to those of the same windows packed alone, from the one cache."""
    root, cache = copy
    windows = Emg2PoseData(root, VOCAB, SPEC, cache).selection("pretrain")
    index = np.sort(np.random.default_rng(0).choice(len(windows), len(windows) // 3, replace=False))
    part = windows.part(index).part(np.arange(1, len(index)))  # a part of a part
    alone = windows.subset(index[1:])
    assert len(part) == len(alone) and np.array_equal(part.starts, alone.starts)
    batches = [list(Batches(d, 8, CPU, seed=3, in_memory_bytes=in_memory_bytes, workers=workers).epoch(1))
               for d in (part, alone)]
    assert len(packed_dirs(cache)) == 2  # the selection's and the windows packed alone; the part has none
    for got, expected in zip(*batches):
        assert all(torch.equal(got[k], expected[k]) for k in ("emg", "pose", "label", "index"))


def test_the_key_follows_the_window_config_the_selection_and_the_files(copy):
    root, cache = copy
    data = Emg2PoseData(root, VOCAB, SPEC, cache)
    windows = data.selection("id_test")
    key = window_cache.pack_key(windows)
    assert window_cache.pack_key(Emg2PoseData(root, VOCAB, SPEC, cache).selection("id_test")) == key
    for spec in (WindowSpec(2000, 500, 10), WindowSpec(1000, 1000, 10), WindowSpec(2000, 1000, 20)):
        assert window_cache.pack_key(Emg2PoseData(root, VOCAB, spec, cache).selection("id_test")) != key
    assert window_cache.pack_key(windows.head(len(windows) - 1)) != key
    assert window_cache.pack_key(data.selection("id_train")) != key
    path = windows.paths[0]
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))  # a rewritten file
    assert window_cache.pack_key(Emg2PoseData(root, VOCAB, SPEC, cache).selection("id_test")) != key


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from cpep.data import cache as window_cache
from cpep.data.emg2pose import Emg2PoseData
from cpep.data.windows import WindowSpec
from cpep.data.gestures import load_vocab

fill = window_cache._fill

def fill_half_then_die(ds, emg, pose):
    fill(ds.head(len(ds) // 2), emg, pose)
    emg.flush()
    os.kill(os.getpid(), signal.SIGKILL)

window_cache._fill = fill_half_then_die
Emg2PoseData(Path(sys.argv[1]), load_vocab("synthetic-v1"), WindowSpec(2000, 1000, 10), Path(sys.argv[2])) \\
    .selection("id_test").packed()
"""


def test_a_killed_writer_or_a_damaged_cache_is_never_reused(copy):
    root, cache = copy
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(root), str(cache)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr
    windows = Emg2PoseData(root, VOCAB, SPEC, cache).selection("id_test")
    key = window_cache.pack_key(windows)
    assert packed_dirs(cache) == [] and len(list((cache / "packed").glob(f".{key}.*.tmp"))) == 1
    expected = direct(windows)
    packed = windows.packed()
    assert [p.name for p in packed_dirs(cache)] == [key] and not list((cache / "packed").glob(".*.tmp"))
    assert torch.equal(torch.from_numpy(np.array(packed.emg)).float(), expected["emg"].half().float())

    emg = cache / "packed" / key / "emg.npy"
    with open(emg, "r+b") as f:  # damaged later: cut short
        f.truncate(emg.stat().st_size // 2)
    again = Emg2PoseData(root, VOCAB, SPEC, cache).selection("id_test").packed()
    assert torch.equal(torch.from_numpy(np.array(again.emg)).float(), expected["emg"].half().float())
    assert torch.equal(torch.from_numpy(np.array(again.pose)), expected["pose"])


def test_the_same_seed_gives_the_same_batches_and_leaves_the_global_rng_alone(copy):
    root, cache = copy

    def epochs(seed, in_memory_bytes, workers=0):
        windows = Emg2PoseData(root, VOCAB, SPEC, cache).selection("pretrain")
        b = Batches(windows, 32, CPU, seed, drop_last=True, in_memory_bytes=in_memory_bytes, workers=workers)
        torch.manual_seed(123)
        before = torch.get_rng_state()
        out = [batch for epoch in range(2) for batch in b.epoch(epoch)]
        assert torch.equal(torch.get_rng_state(), before)  # masks and augmentations drawn next do not shift
        return out

    def same(xs, ys):
        return len(xs) == len(ys) and all(torch.equal(x[k], y[k]) for x, y in zip(xs, ys) for k in x)

    reference = epochs(1, 4e9)
    assert len(reference) > 2 and all(len(b["emg"]) == 32 for b in reference)
    assert same(reference, epochs(1, 4e9))
    assert same(reference, epochs(1, 0.0))
    assert same(reference, epochs(1, 0.0, workers=2))
    assert not same(reference, epochs(2, 4e9))


BOUNDED_FILES = """
import resource, sys
from pathlib import Path
import numpy as np, torch
from cpep.data import schema
from cpep.synth import simulator
from cpep.data.windows import WindowDataset, WindowSpec
from cpep.errors import DataError
from cpep.data.recordings import OPEN_FILES, OpenFiles
from cpep.nn.train import Batches

tmp, count, limit = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
paths = []
for i in range(count):
    rows = np.zeros(300, dtype=schema.TIMESERIES_DTYPE)
    rows["time"] = np.arange(300) / schema.SAMPLE_RATE
    rows["joint_angles"] = rng.uniform(0.1, 1.0, (300, schema.NUM_JOINTS))
    rows["emg"] = rng.normal(size=(300, schema.NUM_CHANNELS))
    paths.append(tmp / f"rec{i}.hdf5")
    simulator.write_recording(paths[-1], rows, {"sample_rate": schema.SAMPLE_RATE})
stats = {"emg_std": [1.0] * 16, "pose_mean": [0.0] * 20, "pose_std": [1.0] * 20}
recording = np.tile(np.arange(count), 3)  # each pass goes through every file: no handle is reused
ds = WindowDataset(paths, recording, np.repeat([0, 100, 200], count), np.zeros(3 * count), WindowSpec(100, 100, 10),
                   stats, tmp / "cache")
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
for i in range(len(ds)):
    ds[i]
assert len(ds._files) == OPEN_FILES
batch = next(Batches(ds, len(ds), torch.device("cpu"), 0, in_memory_bytes=0.0).in_order())
expected = torch.stack([ds[i]["emg"] for i in range(len(ds))])
assert torch.equal(batch["emg"], expected.half().float())
ds._files = OpenFiles(limit=count)  # without the bound, the same reads run out of descriptors
try:
    for i in range(len(ds)):
        ds[i]
except DataError as e:
    assert "Too many open files" in str(e), e
    print("unbounded reader failed")
"""


def test_reading_never_holds_more_than_a_bounded_number_of_files_open(tmp_path):
    limit = OPEN_FILES + 16  # the interpreter's own descriptors, the cache's memory maps
    done = subprocess.run([sys.executable, "-c", BOUNDED_FILES, str(tmp_path), str(2 * limit), str(limit)],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unbounded reader failed"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("in_memory_bytes", [4e9, 0.0])
def test_on_cuda_batches_equal_the_cpus(copy, in_memory_bytes):
    root, cache = copy
    windows = Emg2PoseData(root, VOCAB, SPEC, cache).selection("id_train")
    on_cpu = list(Batches(windows, 16, CPU, seed=1, in_memory_bytes=in_memory_bytes).epoch(0))
    on_gpu = list(Batches(windows, 16, torch.device("cuda"), seed=1, in_memory_bytes=in_memory_bytes).epoch(0))
    assert len(on_cpu) == len(on_gpu) > 1
    for a, b in zip(on_cpu, on_gpu):
        assert b["emg"].is_cuda and b["emg"].dtype == torch.float32 and set(a) == set(b)
        assert all(torch.equal(a[name], b[name].cpu()) for name in a)
