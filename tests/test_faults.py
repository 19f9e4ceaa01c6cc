"""A runs directory that cannot be written, read-only or on a full disk: one line, exit code 2, before any work
where that can be known, and nothing half-written left behind. Real file systems: tmpfs mounts (the tests run as
root; they are skipped where mounting is not permitted)."""

from __future__ import annotations

import errno
import gc
import json
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import tiny_args
from test_cli import assert_one_line_error, cli

from cpep.errors import DiskFull
from cpep.files import replace_atomically, write_text_atomically

POSE_MAE = ["--suite", "smoke", "--variants", "pose_mae", *tiny_args()]


@pytest.fixture
def tmpfs(tmp_path):
    """tmpfs(path, options): a new tmpfs mounted at `path` (made if missing), unmounted after the test."""
    mounted = []

    def mount(path: Path, options: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (mount -o {options}: {done.stderr.strip()})")
        mounted.append(path)
        return path

    yield mount
    gc.collect()  # a failed torch.save's file stays open until the frames of its exception are collected
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=True)


def temporaries(root: Path) -> list[str]:
    """Whatever a writer leaves while it writes: .tmp files and folders, a generated dataset's .synthetic-*."""
    return [str(p) for p in root.rglob(".*") if p.name.endswith(".tmp") or p.name.startswith(".synthetic-")]


def fill(disk: Path) -> None:
    """Write a file until the file system has no space left."""
    with open(disk / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(bytes(1 << 16))
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


@pytest.mark.parametrize("command, inside", [("run", True), ("data check", False)])
def test_a_read_only_runs_directory_is_refused_before_any_work(tmp_path, tmpfs, tiny_data, command, inside):
    disk = tmpfs(tmp_path / "disk", "ro,size=1m")
    results = disk / "results" if inside else disk  # one to be made there, or the read-only folder itself
    args = ["run", *POSE_MAE] if command == "run" else ["data", "check", tiny_data]
    result = cli(*args, "--runs-dir", results, check=False)
    assert_one_line_error(result, f"runs directory {results} is not writable (on a read-only file system); "
                                  f"use another --runs-dir")


def test_a_folder_of_the_runs_directory_that_cannot_be_written_is_one_line(tmp_path, tmpfs, tiny_data):
    results = tmp_path / "results"
    cache = tmpfs(results / "cache", "ro,size=1m")
    result = cli("run", *POSE_MAE, "--data", "emg2pose", "--data-root", tiny_data, "--runs-dir", results,
                 check=False)
    assert_one_line_error(result, f"error: {cache}/")
    assert "Read-only file system" in result.stderr
    assert not (results / "runs").exists() and not (results / "stages").exists()


@pytest.mark.parametrize("data, what", [("synthetic", "data/synthetic-"), ("emg2pose", "cache/packed/")])
def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path, tmpfs, tiny_data, data, what):
    # 4 MB: room for the lock, the scan verdicts and the records, not for the tiny dataset (about 90 MB) or its
    # pre-training windows.
    results = tmpfs(tmp_path / "disk", "size=4m") / "results"
    source = ["--data", "emg2pose", "--data-root", tiny_data] if data == "emg2pose" else []
    result = cli("run", *POSE_MAE, *source, "--runs-dir", results, check=False)
    assert_one_line_error(result, f"error: no space left on device writing {results}/{what}")
    assert "the disk is full" in result.stderr
    assert temporaries(results) == []
    assert not list(results.glob("stages/*/failed.json")), "a full disk recorded as the failure of a stage"
    assert not (results / "run.lock").exists()


def test_stage_outputs_on_a_full_disk_raise_disk_full_and_leave_no_temporary(tmp_path, tmpfs):
    disk = tmpfs(tmp_path / "disk", "size=1m")
    model = disk / "stages" / "align-0" / "model.pt"
    model.parent.mkdir(parents=True)
    fill(disk)
    with pytest.raises(DiskFull, match=f"no space left on device writing {model}: the disk is full"):
        replace_atomically(model, lambda tmp: torch.save({"w": torch.zeros(1 << 16)}, tmp))
    meta = model.parent / "meta.json"
    with pytest.raises(DiskFull, match=f"writing {meta}"):
        write_text_atomically(meta, json.dumps({"loss": [0.5] * 10_000}))
    assert list(model.parent.iterdir()) == []
