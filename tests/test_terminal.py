"""The report as the terminal shows it: at 80 columns every line fits and no number or interval is split across
lines, each footnote is printed once, marks mean the same in every report, and it is at most half as long as every
table (`--full`)."""

from __future__ import annotations

import io
import os
import re
import subprocess

import pytest
from conftest import tiny_args
from rich.console import Console
from test_cli import CLI, cli
from test_report import RESULTS, fixture_records, fixture_suite, make_record  # noqa: F401 (a fixture)

from bench.report import build as report
from bench.report import terminal

# an interval cut at a line's end: "[0.219," / "0.233]", "0.872 ±" / "± 0.029"
SPLIT = [re.compile(p) for p in (r"\[(-?\d\.\d{3},?)?\s*$", r"^\s*-?\d\.\d{3}\]", r"\d\s*±\s*$", r"^\s*±\s*\d")]
INTERVAL = re.compile(r"-?\d\.\d{3}(±\d\.\d{3}| \[-?\d\.\d{3},-?\d\.\d{3}\])")
SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹"


def records_for(suite, method: str) -> list[dict]:
    """The report tests' records; for the bootstrap, which prints intervals from 20 seeds (docs/statistics.md), 20
    seeds of each variant drawn around them, beside the same failed run (emg_mae seed 2)."""
    if method == "t":
        return fixture_records(suite)
    records = fixture_records(suite)
    failed = [r for r in records if r["status"] == "failed"]
    done = []
    for variant, by_seed in RESULTS.items():
        seeds = [s for s in range(21) if not (variant == "emg_mae" and s == 2)]
        for s in seeds:
            base = by_seed[sorted(by_seed)[s % len(by_seed)]]
            done.append(make_record(suite, variant, s, tuple(None if x is None else x + 0.002 * (s % 7) for x in base)))
    return done + failed


def printed(rep, width: int = 80) -> list[str]:
    out = io.StringIO()
    terminal.print_report(rep, Console(file=out, width=width, soft_wrap=True))
    return out.getvalue().splitlines()


def check_fits(lines: list[str], width: int = 80) -> None:
    assert max(map(len, lines)) <= width, [line for line in lines if len(line) > width]
    split = [line for line in lines for p in SPLIT if p.search(line)]
    assert not split, split


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_the_terminal_report_fits_80_columns_with_each_cell_whole(fixture_suite, method):  # noqa: F811
    rep = report.build(fixture_suite, records_for(fixture_suite, method), method)
    lines = printed(rep)
    check_fits(lines)
    # every estimate with an interval is printed whole: the main table's and the claims'
    shown = "\n".join(lines)
    for row in terminal.main_cells(rep):
        for ours, paper in row["cells"].values():
            assert ours in shown and (not paper or paper in shown)
    assert len(INTERVAL.findall(shown)) >= (rep.summary["n"] > 1).sum()
    for _, claim in rep.claims.iterrows():
        assert f"{claim['measured']} {claim['interval']}".strip() in shown
    # each footnote once; marks that do not depend on which reasons a report holds
    notes = [line for line in lines if line.startswith(("n/a:", "±:", "[low,high]:", "chance:"))]
    assert len(notes) == len(set(notes)) >= 3
    assert "n/a: not applicable: no pose-aligned EMG embedding (EMG-MAE)." in shown
    assert not set(shown) & set(SUPERSCRIPTS)
    assert "emg_mae seed 2: failed (emg_mae: RuntimeError: out of memory)" in " ".join(lines)


def test_a_narrow_terminal_splits_the_metrics_over_tables_not_the_cells(fixture_suite):  # noqa: F811
    rep = report.build(fixture_suite, records_for(fixture_suite, "bootstrap"), "bootstrap")
    lines = printed(rep, width=60)
    check_fits(lines, 60)
    assert sum("balanced accuracy on emg2pose data (" in line for line in lines) >= 2  # "(1/3)", "(2/3)", ...


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, make_results):
    results = make_results(tmp_path_factory.mktemp("terminal"))
    cli("run", "--suite", "smoke", "--seeds", "0-1", "--runs-dir", results, *tiny_args())
    return results


def report_lines(results, *args) -> list[str]:
    env = os.environ | {"COLUMNS": "80"}
    done = subprocess.run([*CLI, "report", "--suite", "smoke", "--runs-dir", str(results), "--format", "md", *args],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_smoke_report_at_80_columns_is_half_as_long_as_every_table(smoke):
    # The default intervals (t): two seeds are too few for the bootstrap's, which the report refuses.
    every = report_lines(smoke, "--full")
    lines = report_lines(smoke)
    check_fits(lines)
    assert len(INTERVAL.findall("\n".join(lines))) >= 10  # CPEP's four metrics, two for each other variant
    assert len(lines) <= len(every) / 2, f"{len(lines)} lines, every table {len(every)}"
    assert lines[0].startswith("smoke: balanced accuracy on synthetic data")
