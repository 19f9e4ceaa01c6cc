"""The README and docs/ say what the code does: the README is short, its commands and options exist, its test
command is what CI runs (lint first), every relative link resolves, the plug-in guide's code is the test plug-ins'
code, which runs end to end, and scripts/results.sh writes a report with its provenance."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import typer
from conftest import tiny_args
from test_cli import cli, records

from bench.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
FILE_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```\n", re.DOTALL)


def ci_test_command() -> str:
    """The command .ci/run finds in the README, found the way it finds it (its awk program)."""
    program = re.search(r"awk '([^']+)' README.md", (ROOT / ".ci" / "run").read_text()).group(1)
    return subprocess.run(["awk", program, str(README)], capture_output=True, text=True, check=True).stdout.strip()


def test_the_readme_is_a_readme():
    assert len(README.read_text().splitlines()) <= 250


def test_the_test_command_lints_before_the_tests_and_ruff_is_pinned_to_what_is_installed():
    command = ci_test_command()
    assert command.startswith("python3 -m venv .venv && ")
    assert ".[test]" in command and command.index("ruff check .") < command.index("pytest")
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    pinned = dict(requirement.split("==") for requirement in extra)
    assert pinned["ruff"] == metadata.version("ruff") and pinned["pytest"] == metadata.version("pytest")


def test_the_first_command_runs_and_reports_the_smoke_suite():
    text = README.read_text()
    first = re.search(r"## Fresh machine.*?```\n(.*?)\n```", text, re.DOTALL).group(1)
    assert first.index("cpep-bench run --suite smoke") < first.index("cpep-bench report --suite smoke")


def test_every_command_and_option_in_the_readme_table_exists():
    group = typer.main.get_command(app)
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `cpep-bench ")]
    assert len(rows) >= 8
    for row in rows:
        words = re.match(r"\| `cpep-bench ([a-z ]+)", row).group(1).split()
        command = group
        for word in words:
            if not hasattr(command, "commands") or word not in command.commands:
                break
            command = command.commands[word]
        assert command is not group, row
        options = {opt for param in command.params for opt in param.opts + param.secondary_opts}
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", row))
        assert named <= options, (words, named - options)


def test_every_relative_link_resolves():
    for page in [README, *DOCS]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_the_measured_example_is_lines_of_the_generated_table():
    text = README.read_text()
    example = re.search(r"<!-- measured example: lines of (\S+) -->\n(.*?)<!-- end of measured example -->", text,
                        re.DOTALL)
    generated = (ROOT / example.group(1)).read_text().splitlines()
    rows = [line for line in example.group(2).splitlines() if line.startswith("|")]
    assert len(rows) >= 3 and all(row in generated for row in rows)


def test_the_plugin_guide_shows_the_test_plugins_exactly():
    text = (ROOT / "docs" / "extending.md").read_text()
    blocks = FILE_BLOCK.findall(text)
    shown = {path for path, _ in blocks}
    assert {"tests/plugins/methods/cnn_cpep.py", "tests/plugins/objectives/emg_to_pose.py",
            "tests/plugins/metrics/nearest_centroid.py", "tests/plugins/cnn.toml"} <= shown
    for path, code in blocks:
        assert code == (ROOT / path).read_text(), f"docs/extending.md shows {path} other than it is"
    # no other code block stands in for a file: every python or toml block is one of them
    assert len(re.findall(r"```(?:python|toml)\n", text)) == len(blocks)


def test_the_worked_example_runs_end_to_end(make_results, tmp_path):
    results = make_results(tmp_path / "runs")
    cli("run", "--suite", ROOT / "tests" / "plugins" / "cnn.toml", "--runs-dir", results, *tiny_args(),
        "--set", "cnn.epochs=2", "--set", "cnn.batch_size=32")
    (record,) = records(results).values()
    assert record["status"] == "done" and [s["kind"] for s in record["stages"]] == ["pose_mae", "cnn_align", "eval"]
    assert {"lp_id", "zs_unseen", "centroid_id", "centroid_unseen"} <= set(record["metrics"])
    assert all(0.0 <= value <= 1.0 for value in record["metrics"].values())
    assert record["config"]["cnn"]["objective"] == "emg_to_pose"
    assert record["config"]["emg_to_pose"]["label_smoothing"] == 0.1
    assert "centroid_id" not in record["by_user"] and "lp_id" in record["by_user"]  # compute only: no per-user score


def test_the_results_script_writes_the_report_with_its_provenance(make_results, tmp_path):
    runs, results = make_results(tmp_path / "runs"), tmp_path / "results"
    env = {**os.environ, "CPEP_BENCH_RUNS": str(runs), "CPEP_BENCH_RESULTS": str(results),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = results / "smoke"
    out.mkdir(parents=True)
    (out / "earlier.md").write_text("a file of an earlier report")

    def script(*args):
        return subprocess.run(["bash", ROOT / "scripts" / "results.sh", "smoke", *args], env=env,
                              capture_output=True, text=True, timeout=1800)

    refused = script(*tiny_args(), "--set", "encoder.heads=0")
    assert refused.returncode == 2 and "error: encoder.heads must be > 0" in refused.stderr
    assert (out / "earlier.md").is_file()  # a refused run leaves the last report as it was
    done = script(*tiny_args())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    names = {p.name for p in out.iterdir()}
    assert "earlier.md" not in names
    assert {"README.md", "provenance.json", "table.md", "claims.md", "table.tex", "table.csv", "report.html", "bars.png"} <= names
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    readme = (out / "README.md").read_text()
    assert commit in readme and "--set train.threads=1" in readme and "wall time" in readme
    assert (out / "table.md").read_text() in readme
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["git"]["commit"] == commit and provenance["suite"] == "smoke"
    assert provenance["runs"] == {"done": 4} and provenance["ci"] == {"method": "t", "level": 0.95}
    assert list(provenance["run_commits"]) == [commit]
    assert provenance["command"].startswith("cpep-bench report --suite smoke") and str(out) in provenance["command"]
