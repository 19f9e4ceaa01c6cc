"""One number, one origin, end to end: records of two data roots are kept apart and never pooled, and a seed
retrained after a code change is never averaged with the seeds of the older code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from conftest import tiny_args
from test_cli import assert_one_line_error, cli

SYNTH = ["--users", "3", "--test-users", "1", "--stage-seconds", "3", "--sessions", "1", "--stages", "v1"]
FLOOR = ["--suite", "smoke", "--variants", "emg_log_power", "--data", "emg2pose", "--set", "data.vocab=synthetic-v1"]


def test_two_roots_of_one_dataset_are_kept_apart_and_never_pooled(tmp_path):
    roots = [tmp_path / "first", tmp_path / "second"]
    for seed, root in enumerate(roots):
        cli("data", "synth", "--out", root, "--seed", seed, *SYNTH)
    runs = tmp_path / "runs"
    for root in roots:
        cli("run", *FLOOR, "--data-root", root, "--runs-dir", runs, *tiny_args())
    records = sorted((runs / "runs" / "smoke").glob("*/emg_log_power/seed-0.json"))
    assert len(records) == 2, "the second root's record replaced the first's"
    by_root = {json.loads(p.read_text())["data_root"]: json.loads(p.read_text()) for p in records}
    assert set(by_root) == {str(r.resolve()) for r in roots}
    assert by_root[str(roots[0].resolve())]["data_key"] != by_root[str(roots[1].resolve())]["data_key"]

    pooled = cli("report", "--suite", "smoke", "--runs-dir", runs, check=False)
    assert_one_line_error(pooled, "records on 2 data identities, which a table never pools")
    assert all(f"emg2pose-{r['data_key']}" in pooled.stderr for r in by_root.values())
    assert not (runs / "report").exists()
    for root in roots:
        out = tmp_path / f"report-{root.name}"
        cli("report", "--suite", "smoke", "--runs-dir", runs, "--data-root", root, "--out", out, "--format", "md")
        table = (out / "table.md").read_text()
        key = by_root[str(root.resolve())]["data_key"]
        assert f"balanced accuracy on emg2pose-{key} ({root.resolve()}; 1 runs)" in table
        assert "No published reference" in table  # synthetic classes read as emg2pose: not the paper's protocol


ENVELOPE = """
description = "the envelope plug-in, seeds 0 and 1"
seeds = [0, 1]
plugins = ["{plugins}"]

[[variants]]
name = "envelope"
method = "envelope"
"""


def test_a_seed_retrained_after_a_code_change_is_never_averaged_with_the_older_seeds(tmp_path):
    plugins = tmp_path / "plugins"
    shutil.copytree(Path(__file__).parent / "plugins" / "methods", plugins / "methods")
    suite = tmp_path / "envelope.toml"
    suite.write_text(ENVELOPE.format(plugins=plugins))
    runs = tmp_path / "runs"
    cli("run", "--suite", suite, "--runs-dir", runs, *tiny_args())
    method = plugins / "methods" / "envelope.py"
    method.write_text(method.read_text().replace("+ 1e-4)", "+ 1e-3)"))  # the plug-in's code changes
    cli("run", "--suite", suite, "--seeds", "0", "--runs-dir", runs, *tiny_args())

    status = cli("status", "--suite", suite, "--runs-dir", runs).stdout
    (line,) = [line for line in status.splitlines() if "envelope/seed-1" in line]
    assert "stale" in line and "code changed" in line
    assert "done" in next(line for line in status.splitlines() if "envelope/seed-0" in line)

    out = tmp_path / "report"
    cli("report", "--suite", suite, "--runs-dir", runs, "--out", out, "--format", "md,csv")
    table = (out / "table.md").read_text()
    assert "| envelope | 1 | stale | computed by older code (fingerprint" in table
    summary = pd.read_csv(out / "table.csv").set_index("metric")
    assert summary.loc[["lp_id", "lp_unseen"], "n"].tolist() == [1, 1]  # seed 0 alone: seed 1's code is older
    marked = tmp_path / "marked"
    cli("report", "--suite", suite, "--runs-dir", runs, "--out", marked, "--format", "md", "--reuse-stale")
    assert "envelope†" in (marked / "table.md").read_text()

    cli("run", "--suite", suite, "--runs-dir", runs, *tiny_args())  # recomputes the stale seed
    assert "stale" not in cli("status", "--suite", suite, "--runs-dir", runs).stdout
