"""A results directory that cannot be written (read-only): one line, exit code 2, before any work where that can
be known. Real file systems: tmpfs mounts (the tests run as root; they are skipped where mounting is not
permitted)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import tiny_args
from test_cli import assert_one_line_error, cli

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
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("command, inside", [("run", True), ("data check", False)])
def test_a_read_only_results_directory_is_refused_before_any_work(tmp_path, tmpfs, tiny_data, command, inside):
    disk = tmpfs(tmp_path / "disk", "ro,size=1m")
    results = disk / "results" if inside else disk  # one to be made there, or the read-only folder itself
    args = ["run", *POSE_MAE] if command == "run" else ["data", "check", tiny_data]
    result = cli(*args, "--results-dir", results, check=False)
    assert_one_line_error(result, f"results directory {results} is not writable (on a read-only file system); "
                                  f"use another --results-dir")


def test_a_folder_of_the_results_directory_that_cannot_be_written_is_one_line(tmp_path, tmpfs, tiny_data):
    results = tmp_path / "results"
    cache = tmpfs(results / "cache", "ro,size=1m")
    result = cli("run", *POSE_MAE, "--data", "emg2pose", "--data-root", tiny_data, "--results-dir", results,
                 check=False)
    assert_one_line_error(result, f"error: {cache}/")
    assert "Read-only file system" in result.stderr
    assert not (results / "runs").exists() and not (results / "stages").exists()
