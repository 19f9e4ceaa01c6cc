"""Writing a built report: its tables in each format asked for, and provenance.json, where its numbers come from."""

from __future__ import annotations

import json
import platform
import shlex
import socket
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

from bench.report import claims, latex, select, tables, variance
from bench.report.frames import Report
from cpep.errors import UserError
from cpep.files import write_text_atomically

FORMATS = ("md", "tex", "csv", "html")


def write_tables(report: Report, out: Path, formats: tuple[str, ...]) -> list[Path]:
    files = {}
    if "md" in formats:
        files["table.md"] = tables.markdown(report)
    if "tex" in formats:
        files["table.tex"] = latex.table(report)
        files["iqm.tex"] = latex.iqm(report)
        files["differences.tex"] = latex.differences(report)
        if tables.improvement_rows(report):
            files["improvement.tex"] = latex.improvement(report)
        if not report.claims.empty:
            files["claims.tex"] = latex.claims(report)
    if "csv" in formats:
        files["table.csv"] = tidy(report).to_csv(index=False)
        files["differences.csv"] = report.differences.to_csv(index=False)
        files["ordering.csv"] = report.ordering.to_csv(index=False)
        files["incomplete.csv"] = report.incomplete.to_csv(index=False)
        files["improvement.csv"] = report.improvement.to_csv(index=False)
        files["claims.csv"] = report.claims.to_csv(index=False)
        if not report.profiles.empty:
            files["profiles.csv"] = report.profiles.to_csv(index=False)
    if "md" in formats:
        files["claims.md"] = claims.markdown(report.claims, claims.settings_of(report))
    if not report.variance.empty:
        if "md" in formats:
            files["variance.md"] = variance.markdown(report)
        if "csv" in formats:
            files["variance.csv"] = report.variance.to_csv(index=False)
    for name, text in files.items():
        write_text_atomically(out / name, text)
    return [out / name for name in files]


PROVENANCE = "provenance.json"


def provenance(report: Report, records: list[dict]) -> dict:
    """Where the report's numbers come from: the command and code that made the report, where and when, and the
    records it read (their data identity, code, commits and environments)."""
    from bench.run import provenance as run_provenance
    commits = Counter(str(((r.get("provenance") or {}).get("git") or {}).get("commit")) for r in records)
    return {
        "command": shlex.join(["cpep-bench", *sys.argv[1:]]),
        "generated": run_provenance.now(),
        "git": run_provenance.git_state(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "versions": {name: run_provenance._version(name) for name in run_provenance.PACKAGES},
        "suite": report.suite,
        "data": report.data,
        "data_identity": records[0].get("data_identity"),
        "ci": {"method": report.method, "level": report.level},
        "runs": Counter(r["status"] for r in records),
        "run_commits": dict(commits),
        "run_environments": dict(select.environments([r for r in records if r["status"] == "done"])),
        "run_hosts": sorted({str((r.get("provenance") or {}).get("host")) for r in records}),
        "runs_finished": [min(r.get("updated", "") for r in records), max(r.get("updated", "") for r in records)],
    }


def write_provenance(report: Report, records: list[dict], out: Path) -> Path:
    """provenance.json beside the tables."""
    path = out / PROVENANCE
    write_text_atomically(path, json.dumps(provenance(report, records), indent=1, sort_keys=True, default=str) + "\n")
    return path


def tidy(report: Report) -> pd.DataFrame:
    """The summary as written to table.csv: one row per variant x metric, self-describing."""
    df = report.summary.drop(columns=["in_paper"]).assign(
        n_asked=len(report.seeds), ci_method=report.method, level=report.level)
    df.insert(0, "dataset", report.dataset)
    df.insert(0, "suite", report.suite)
    return df


def parse_formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"--format takes a comma-separated list of {', '.join(FORMATS)}, not {text!r}")
    return formats
